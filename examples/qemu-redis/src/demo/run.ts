// The QEMU example's orchestrator: network, three replica processes, client load in the client
// namespace, kill -9 of the primary, takeover, verification, summary — and cleanup of everything
// it created, also when interrupted (the caller wires signals to `abort()`).
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import {
  ensureGuestImage,
  FrameChannel,
  findGuestImage,
  guestKernelAppend,
  launch,
  type QemuProcess,
  TestNetwork,
} from '@plover/qemu'
import { DEFAULT_COMPACT_AFTER_ENTRIES } from '@plover/vmsync'
import type {
  MembershipMessage,
  MembershipResult,
  ReplicaMessage,
  ReplicaProcessConfig,
  ReplicaStatus,
  ReplicaSyncReport,
} from '../replica/config.js'
import { unavailableReason } from './environment.js'
import { freePorts } from './ports.js'

const HERE = dirname(fileURLToPath(import.meta.url))
const PKG_DIR = join(HERE, '..', '..')
const REPLICA_MAIN = join(HERE, '..', 'replica', 'main.ts')
const CHECKER_MAIN = join(HERE, '..', 'checker', 'main.ts')

export interface DemoOptions {
  /** Guest RAM (MiB), both VMs. */
  readonly memoryMiB?: number
  /** Seconds of load before the kill. */
  readonly loadBeforeKillS?: number
  /** Seconds of load after the takeover. */
  readonly loadAfterTakeoverS?: number
  /** redis-benchmark clients per test (one SET and one GET benchmark run side by side). */
  readonly benchClients?: number
  /** Whole-run budget: every wait fails (and cleanup runs) once it is spent. Default 15 min. */
  readonly deadlineMs?: number
  /** Start the spare (replica 4) as the new backup after the failover (default true). */
  readonly reprotect?: boolean
  /**
   * Who re-protects: 'spare' (default: replica 4, fresh data directory) or 'restart' (the killed
   * replica again, on its old data directory and WAL, with a new QEMU: a host that came back).
   */
  readonly rejoin?: 'spare' | 'restart'
  /** Every replica's compactAfterEntries (default: the replica config's). */
  readonly compactAfterEntries?: number
  /** Skip the kill (no failover): for debugging the replicated setup. */
  readonly noFailover?: boolean
  /**
   * After re-protection, kill the new primary too: the replica that re-protected it must take
   * over from the VM its (pre-copied) full sync and the syncs since gave it (default false).
   */
  readonly secondFailover?: boolean
  /**
   * 'hang' instead of the kill: the primary's QEMU and replica process are stopped (SIGSTOP, a
   * frozen host or one cut off from the others) and thawed once the backup serves; the old
   * primary must step down and become the new primary's backup (no spare, no membership change).
   * 'switchover': a planned stop — SIGTERM to the primary's replica process, which hands
   * leadership to its synced backup before it stops its QEMU; then re-protection as after a kill.
   */
  readonly failure?: 'kill' | 'hang' | 'switchover'
  readonly print?: (line: string) => void
  // --- benchmark options (defaults keep the example's behaviour) ---
  /** vmsync mode of both voters (default 'vsmr'). */
  readonly syncMode?: 'vsmr' | 'remus'
  /** Every voter's replica config `precopy` (default true). */
  readonly precopy?: boolean
  /** Every voter's replica config `reuseScanDigests` (default true). */
  readonly reuseScanDigests?: boolean
  /** How both voters' hash workers read the RAM file (default 'auto': mapped when possible). */
  readonly hashFileReads?: 'auto' | 'mmap' | 'pread'
  /** The device-state form both voters send (default 'snapshot': loaded in place). */
  readonly deviceState?: 'snapshot' | 'migration'
  /** Sync every N ms instead of when the idle monitor says so (default: idle monitor). */
  readonly fixedSyncIntervalMs?: number
  /** Overrides of the idle monitor's sync policy (defaults: the replica config's). */
  readonly syncPolicy?: {
    readonly minIntervalMs?: number
    readonly maxHeldAgeMs?: number
    readonly periodMs?: number
    readonly outputSettledSamples?: number
    readonly quietWindowMs?: number
    readonly quietMaxMs?: number
  }
  /** Run the checker (default true). Benchmarks turn it off: its one-at-a-time SETs are extra load. */
  readonly checker?: boolean
  /**
   * redis-benchmark in CSV mode with this many requests per loop iteration (one CSV row each, with
   * rps and latency percentiles) instead of the quiet endless mode. Rows land in `load`.
   */
  readonly benchIterationRequests?: number
  /** Per sync the primary completes (replicas then send their SyncReports over IPC). */
  readonly onSyncReport?: (r: ReplicaSyncReport) => void
  /** Replica processes' log lines (JSON); default: dropped except warnings/errors. */
  readonly replicaLog?: (id: number, line: string) => void
}

export interface DemoResult {
  readonly primaryId: number
  readonly backupId: number
  readonly fullSyncMs: number
  readonly syncsBeforeKill: number
  /** Frames the backup's replica wrote to its tap before the kill (must be 0: outputs discarded). */
  readonly backupReleasedBeforeKill: number
  readonly electedMs: number | undefined
  /** `failure: 'switchover'`: whom the stopping primary handed leadership to. */
  readonly handedOverTo?: number
  readonly promotedMs: number | undefined
  readonly clientOutageMs: number | undefined
  readonly checker: CheckerVerdict | undefined
  readonly benchmark: { set: string; get: string; runningAtEnd?: boolean }
  readonly newPrimaryStatus: ReplicaStatus | undefined
  /** The survivors' consensus logs at the end, from their last status (failover runs). */
  readonly logs?: readonly {
    readonly id: number
    readonly firstIndex: number
    readonly compactions: number
  }[]
  /** Re-protection by the spare (replica 4): ms from the kill until outputs were protected again. */
  readonly reprotect:
    | { readonly protectedMs: number; readonly fullSyncMs: number; readonly voter: boolean }
    | undefined
  readonly failedOver: boolean
  /** The second kill (`secondFailover`): the new primary, ms from its kill. */
  readonly secondFailover?: Takeover & { readonly victimId: number; readonly heirId: number }
  /** `failure: 'hang'`: the thawed old primary, ms from its thaw. */
  readonly thawed?: {
    /** It reported that it no longer leads and its VM is a backup. */
    readonly steppedDownMs: number
    /** The new primary was protected again with it as the backup (after their first sync). */
    readonly protectedMs: number
  }
  readonly notDone: string[]
  /** The client load (before the kill): redis-benchmark CSV rows and the primary's status. */
  readonly load?: LoadResult
}

/** One redis-benchmark CSV row (one loop iteration of `benchIterationRequests` requests). */
export interface BenchRow {
  readonly test: 'SET' | 'GET'
  /** When the row arrived (ms since the epoch). */
  readonly at: number
  readonly rps: number
  readonly avgMs: number
  readonly p50Ms: number
  readonly p95Ms: number
  readonly p99Ms: number
  readonly maxMs: number
}

export interface LoadResult {
  readonly startedAt: number
  readonly endedAt: number
  readonly iterationRequests: number
  readonly clientsPerTest: number
  readonly rows: readonly BenchRow[]
  /**
   * The guest's own count of SET and GET calls (INFO commandstats) at the start and end of the
   * load, and when each answer arrived: served requests independent of benchmark iterations.
   */
  readonly served?: { readonly start: RedisCounts; readonly end: RedisCounts }
  /** The primary's status when the load started and ended (replicated runs). */
  readonly primaryAtStart?: ReplicaStatus
  readonly primaryAtEnd?: ReplicaStatus
}

export interface RedisCounts {
  readonly at: number
  readonly set: number
  readonly get: number
}

export interface UnreplicatedOptions {
  /** 'direct': QEMU on its tap, no Node in the path; 'relay': every frame through Node's redirectors. */
  readonly path: 'direct' | 'relay'
}

export interface CheckerVerdict {
  readonly acked: number
  readonly readable: number
  readonly missingCount: number
  readonly wrongCount: number
  readonly connectionSurvived: boolean
  readonly closedReason: string | null
  readonly localPort: number
  readonly acksBeforeKill: number
  readonly acksAfterKill: number
}

/** One failover as the client saw it, ms from the kill. */
export interface Takeover {
  /** `failure: 'switchover'`: the replica the stopping primary handed leadership to. */
  readonly handedOverTo?: number
  readonly electedMs: number
  readonly promotedMs: number
  /** The checker's last acknowledged SET before the kill -> its first one after. */
  readonly clientOutageMs: number | undefined
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export class Demo {
  private net: TestNetwork | undefined
  private tmp: string | undefined
  private readonly children = new Map<number, ChildProcess>()
  private readonly clients = new Set<ChildProcess>()
  private readonly ramFiles: string[] = []
  private readonly status = new Map<number, ReplicaStatus>()
  private readonly events: Array<Extract<ReplicaMessage, { type: 'event' }>> = []
  private cleaning: Promise<void> | undefined
  /** Demos made in this process: several may run at once (the bench's two guests side by side). */
  private static instances = 0
  /** QEMU names (and their standbys') start with this: run dirs of SIGKILLed QEMUs are removed by it. */
  private readonly vmPrefix = `qr${process.pid}i${Demo.instances++}r`
  private aborted: Error | undefined
  private readonly print: (line: string) => void

  constructor(private readonly o: DemoOptions = {}) {
    this.print = o.print ?? ((l) => process.stdout.write(`${l}\n`))
  }

  /** Stops the run at the next wait (signals); cleanup runs in run()'s finally. */
  abort(reason: string): void {
    this.aborted ??= new Error(`interrupted: ${reason}`)
  }

  async run(): Promise<DemoResult> {
    this.deadline = Date.now() + (this.o.deadlineMs ?? 900_000)
    try {
      return await this.steps()
    } finally {
      await this.cleanup()
    }
  }

  private deadline = Number.POSITIVE_INFINITY

  private check(): void {
    if (this.aborted) throw this.aborted
    if (Date.now() > this.deadline)
      throw new Error(`run exceeded its ${this.o.deadlineMs ?? 900_000} ms budget`)
    for (const e of this.events)
      if (e.name === 'fatal' && !this.killed.has(e.id)) throw new Error(`replica ${e.id}: ${e.detail}`)
  }

  private readonly killed = new Set<number>()
  /** Replicas stopped with SIGSTOP: [QEMU pid, replica pid]; thawed before any cleanup. */
  private readonly frozen = new Map<number, [number, number]>()

  /**
   * SIGCONT to a frozen old primary; waits until it has stepped down to a backup and the new
   * primary is protected again by it (its first sync with the new primary).
   */
  private async thaw(before: ReplicaStatus, primaryId: number): Promise<DemoResult['thawed']> {
    const p = this.print
    const id = before.id
    this.thawPids(id)
    const t0 = Date.now()
    p(`• thaw replica ${id} and its QEMU`)
    await this.waitFor(`replica ${id} to step down`, 60_000, () => {
      const s = this.status.get(id)
      return s && s.term > before.term && s.consensusRole !== 'leader' && s.vm?.role === 'backup'
    })
    const steppedDownMs = Date.now() - t0
    p(`  it stepped down after ${steppedDownMs} ms (follows replica ${this.status.get(id)?.leader})`)
    await this.waitFor(`replica ${primaryId} to be protected by ${id} again`, 300_000, () => {
      const s = this.status.get(primaryId)?.vm
      return s?.protected && s.hasBackup && this.status.get(id)?.vm?.trusted
    })
    const protectedMs = Date.now() - t0
    p(`  replica ${primaryId} is protected again by ${id} after ${protectedMs} ms`)
    return { steppedDownMs, protectedMs }
  }

  private thawPids(id: number): void {
    for (const pid of this.frozen.get(id) ?? []) {
      try {
        process.kill(pid, 'SIGCONT')
      } catch {}
    }
    this.frozen.delete(id)
  }

  private async waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined | false): Promise<T> {
    const until = Math.min(Date.now() + timeoutMs, this.deadline)
    for (;;) {
      this.check()
      const v = probe()
      if (v) return v
      if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
      await sleep(50)
    }
  }

  private async steps(): Promise<DemoResult> {
    const p = this.print
    const notDone: string[] = []
    const missing = unavailableReason()
    if (missing) throw new Error(missing)
    p('• guest image')
    const image = findGuestImage() ?? (await ensureGuestImage())
    p(`  ${image.kernel}`)
    p('• network: bridge, two taps, client namespace')
    this.net = await TestNetwork.create()
    const net = this.net
    const tapA = await net.addTap()
    const tapB = await net.addTap()
    const guestCidr = net.guestAddress(10)
    const guestIp = guestCidr.split('/')[0]
    p(
      `  bridge ${net.bridge}, taps ${tapA} ${tapB}, namespace ${net.namespace} (client ${net.clientIp}), guest ${guestIp}`,
    )
    this.tmp = mkdtempSync(join(tmpdir(), 'plover-qemu-redis-'))
    const key = randomBytes(32).toString('hex')
    // Replica 4 is the spare in the address book: it joins as the new backup after the failover.
    const ids = [1, 2, 3, 4]
    const free = await freePorts(ids.length * 3)
    const ports = ids.map((_, i) => ({
      consensus: free[i * 3],
      sync: free[i * 3 + 1],
      metrics: free[i * 3 + 2],
    }))
    const replicas = ids.map((id, i) => ({
      id,
      role: id === 3 ? ('witness' as const) : ('voter' as const),
      host: '127.0.0.1',
      consensusPort: ports[i].consensus,
      ...(id === 3 ? {} : { syncPort: ports[i].sync }),
    }))
    const memoryMiB = this.o.memoryMiB ?? 128
    const tmp = this.tmp
    const startReplica = (
      id: number,
      tap: string | undefined,
      bootstrap: ReplicaProcessConfig['bootstrap'],
    ) => {
      const name = `${this.vmPrefix}${id}`
      const ramPath = `/dev/shm/plover-${name}.ram`
      if (tap) this.ramFiles.push(ramPath)
      this.startReplica({
        id,
        dataDir: join(tmp, `replica-${id}`),
        clusterKeyHex: key,
        replicas,
        bootstrap,
        tickMs: 20,
        shutdownTimeoutMs: 10_000,
        compactAfterEntries: this.o.compactAfterEntries ?? DEFAULT_COMPACT_AFTER_ENTRIES,
        // 2 s election timeout (×1–2 randomised): TCG guests and hashing load the 2 cores.
        electionTicks: 100,
        sync: {
          maxIntervalMs: 1000,
          minIntervalMs: 50,
          maxHeldAgeMs: 40,
          periodMs: 20,
          ...this.o.syncPolicy,
          ...(this.o.fixedSyncIntervalMs ? { fixedIntervalMs: this.o.fixedSyncIntervalMs } : {}),
        },
        ...(this.o.syncMode ? { syncMode: this.o.syncMode } : {}),
        ...(this.o.precopy === false ? { precopy: false } : {}),
        ...(this.o.reuseScanDigests === false ? { reuseScanDigests: false } : {}),
        ...(this.o.onSyncReport ? { reportSyncs: true } : {}),
        // GET /metrics, /status (the replica logs the URL as "HTTP endpoint listening").
        metrics: { host: '127.0.0.1', port: ports[ids.indexOf(id)].metrics },
        ...(tap
          ? {
              vm: {
                name,
                memoryMiB,
                ramPath,
                tap,
                bridge: net.bridge,
                tapPrefix: net.id,
                ip: guestCidr,
                kernel: image.kernel,
                initrd: image.initrd,
                ...(this.o.hashFileReads ? { hashFileReads: this.o.hashFileReads } : {}),
                ...(this.o.deviceState ? { deviceState: this.o.deviceState } : {}),
              },
            }
          : {}),
      })
    }
    const initial = [
      { id: 1, role: 'voter' as const },
      { id: 2, role: 'voter' as const },
      { id: 3, role: 'witness' as const },
    ]
    startReplica(1, tapA, initial)
    startReplica(2, tapB, initial)
    startReplica(3, undefined, initial)
    p(
      `• three replica processes on 127.0.0.1 (1, 2: QEMU ${memoryMiB} MiB + vmsync; 3: witness); booting guests…`,
    )
    const t0 = Date.now()
    const primary = await this.waitFor('a primary VM (leader)', 420_000, () => {
      for (const s of this.status.values())
        if (s.vm?.role === 'primary' && s.consensusRole === 'leader') return s
      return undefined
    })
    p(`  replica ${primary.id} leads and is primary (${((Date.now() - t0) / 1000).toFixed(1)} s after start)`)
    const backupId = primary.id === 1 ? 2 : 1
    const tFull = Date.now()
    await this.waitFor('the first (full) sync of the backup', 420_000, () => {
      const s = this.status.get(primary.id)
      const b = this.status.get(backupId)
      return s?.vm?.protected && s.vm.fullSyncs >= 1 && b?.vm?.trusted
    })
    const fullSyncMs = Date.now() - tFull
    p(`  backup ${backupId} synced in full (${(fullSyncMs / 1000).toFixed(1)} s); outputs are protected`)

    // --- client load ---
    const useChecker = this.o.checker !== false
    p(
      useChecker
        ? '• client namespace: checker (one TCP connection) + redis-benchmark SET and GET side by side'
        : '• client namespace: redis-benchmark SET and GET side by side',
    )
    const checker = useChecker ? this.startChecker(guestIp) : undefined
    if (checker) await this.waitFor('the checker to connect', 120_000, () => checker.connected)
    const primaryAtStart = this.status.get(primary.id)
    const countsAtStart = this.o.benchIterationRequests ? await this.redisCounts(guestIp) : undefined
    const bench = this.startBenchmarks(guestIp)
    const benchOut = bench.out
    const loadS = this.o.loadBeforeKillS ?? 20
    for (let s = 0; s < loadS; s++) {
      await sleep(1000)
      this.check()
      if (s % 5 === 4) p(`  ${this.line(primary.id, checker)}`)
    }
    const benchResult = bench.result()
    const primaryAtEnd = this.status.get(primary.id)
    const countsAtEnd = countsAtStart ? await this.redisCounts(guestIp) : undefined
    const load: LoadResult = {
      ...benchResult,
      ...(countsAtStart && countsAtEnd ? { served: { start: countsAtStart, end: countsAtEnd } } : {}),
      primaryAtStart,
      primaryAtEnd,
    }
    const before = this.status.get(primary.id)!
    const syncsBeforeKill = before.vm?.syncs ?? 0
    const backupReleasedBeforeKill = this.status.get(backupId)?.vm?.releasedFrames ?? -1
    const acksBeforeKill = checker?.acks.length ?? 0
    if (this.o.noFailover || !checker) {
      notDone.push('failover skipped (noFailover)')
      for (const c of bench.procs) c.kill('SIGKILL')
      const verdict = await checker?.verify()
      return {
        primaryId: primary.id,
        backupId,
        fullSyncMs,
        syncsBeforeKill,
        backupReleasedBeforeKill,
        electedMs: undefined,
        promotedMs: undefined,
        clientOutageMs: undefined,
        checker: verdict && { ...verdict, acksBeforeKill, acksAfterKill: 0 },
        benchmark: benchOut,
        newPrimaryStatus: undefined,
        reprotect: undefined,
        failedOver: false,
        notDone,
        load,
      }
    }

    // --- failover ---
    const hang = this.o.failure === 'hang'
    const first = await this.failover(before, backupId, checker, notDone, this.o.failure ?? 'kill')
    const thawed = hang ? await this.thaw(before, backupId) : undefined
    const reprotect =
      this.o.reprotect === false || hang
        ? undefined
        : await this.reprotect(primary.id, backupId, startReplica, notDone)
    const afterS = this.o.loadAfterTakeoverS ?? 8
    const loadOn = async (primaryId: number) => {
      for (let s = 0; s < afterS; s++) {
        await sleep(1000)
        this.check()
        if (s % 4 === 3) p(`  ${this.line(primaryId, checker)}`)
      }
    }
    await loadOn(backupId)
    let second: DemoResult['secondFailover']
    let finalPrimary = backupId
    if (this.o.secondFailover) {
      const heirId = this.o.rejoin === 'restart' ? primary.id : 4
      const victim = this.status.get(backupId)
      if (!reprotect?.voter || !victim)
        notDone.push('second failover skipped: the spare did not become a voter')
      else {
        p(`• second failover: the replica that re-protected the primary (${heirId}) must now take over`)
        const { killedAt: _, ...takeover } = await this.failover(victim, heirId, checker, notDone)
        second = { ...takeover, victimId: backupId, heirId }
        finalPrimary = heirId
        await loadOn(heirId)
      }
    }
    // redis-benchmark exits on a connection error: still running = its connections survived too.
    const benchRunning = bench.procs.every((c) => c.exitCode === null && c.signalCode === null)
    for (const c of bench.procs) c.kill('SIGKILL')
    p('• verify: every acknowledged SET read back over the checker’s original connection')
    const verdict = await checker.verify(Math.max(10_000, Math.min(180_000, this.deadline - Date.now())))
    const acksAfterKill = checker.acks.filter((a) => a > first.killedAt).length
    return {
      primaryId: primary.id,
      backupId,
      fullSyncMs,
      syncsBeforeKill,
      backupReleasedBeforeKill,
      electedMs: first.electedMs,
      ...(first.handedOverTo === undefined ? {} : { handedOverTo: first.handedOverTo }),
      promotedMs: first.promotedMs,
      clientOutageMs: first.clientOutageMs,
      checker: verdict && { ...verdict, acksBeforeKill, acksAfterKill },
      benchmark: { ...benchOut, runningAtEnd: benchRunning },
      newPrimaryStatus: this.status.get(finalPrimary),
      logs: [...this.status.values()]
        .filter((st) => !this.killed.has(st.id))
        .map((st) => ({ id: st.id, firstIndex: st.logFirstIndex, compactions: st.compactions })),
      failedOver: true,
      secondFailover: second,
      thawed,
      reprotect,
      notDone,
      load,
    }
  }

  /**
   * kill -9 of the primary's QEMU and replica process (or SIGSTOP of both, `how: 'hang'`; or
   * SIGTERM of the replica process, `how: 'switchover'`), then the heir's election (with the
   * witness's vote, or handed over), its promotion, and the checker's first acknowledged SET
   * after the failure.
   */
  private async failover(
    victim: ReplicaStatus,
    heirId: number,
    checker: CheckerHandle,
    notDone: string[],
    how: 'kill' | 'hang' | 'switchover' = 'kill',
  ): Promise<Takeover & { readonly killedAt: number }> {
    const p = this.print
    const qemuPid = victim.vm!.qemuPid
    p(
      how === 'kill'
        ? `• kill -9 primary QEMU (pid ${qemuPid}) and replica process ${victim.id} (pid ${victim.pid})`
        : how === 'hang'
          ? `• freeze (SIGSTOP) primary QEMU (pid ${qemuPid}) and replica process ${victim.id} (pid ${victim.pid})`
          : `• SIGTERM to primary replica process ${victim.id} (pid ${victim.pid}): a planned stop`,
    )
    if (how === 'hang') this.frozen.set(victim.id, [qemuPid, victim.pid])
    else this.killed.add(victim.id)
    const tKill = Date.now()
    if (how === 'switchover') this.children.get(victim.id)?.kill('SIGTERM')
    else {
      const signal = how === 'kill' ? 'SIGKILL' : 'SIGSTOP'
      try {
        process.kill(qemuPid, signal)
      } catch {}
      this.children.get(victim.id)?.kill(signal)
    }
    const elected = await this.waitFor(`replica ${heirId} to be elected`, 120_000, () => {
      const b = this.status.get(heirId)
      return b && b.consensusRole === 'leader' && b.term > victim.term ? Date.now() : undefined
    })
    const promoted = await this.waitFor(`replica ${heirId} to act as primary`, 60_000, () => {
      const b = this.status.get(heirId)
      return b?.vm?.role === 'primary' ? Date.now() : undefined
    })
    // The stopping primary reports its hand-over over IPC before it stops its QEMU.
    const handedOver =
      how === 'switchover'
        ? await this.waitFor(`replica ${victim.id} to report its hand-over`, 15_000, () =>
            this.events.find((e) => e.id === victim.id && e.name === 'handed-over'),
          ).catch((e: Error) => {
            notDone.push(`no hand-over: ${e.message}`)
            return undefined
          })
        : undefined
    p(
      `  replica ${heirId} ${handedOver ? `handed leadership by replica ${victim.id}` : 'elected (witness vote)'} after ${elected - tKill} ms, primary after ${promoted - tKill} ms`,
    )
    const firstAck = await this.waitFor('the checker’s next acknowledged SET', 120_000, () =>
      checker.acks.find((a) => a > tKill),
    ).catch((e: Error) => {
      notDone.push(`client did not resume: ${e.message}`)
      return undefined
    })
    if (firstAck)
      p(
        `  checker’s next SET acknowledged ${firstAck - tKill} ms after the ${how === 'hang' ? 'freeze' : how === 'kill' ? 'kill' : 'SIGTERM'} (same connection)`,
      )
    return {
      killedAt: tKill,
      ...(handedOver ? { handedOverTo: Number(handedOver.detail) } : {}),
      electedMs: elected - tKill,
      promotedMs: promoted - tKill,
      clientOutageMs: firstAck ? firstAck - checker.lastAckBefore(tKill) : undefined,
    }
  }

  /** redis-benchmark SET and GET side by side in the client namespace (quiet, or CSV rows). */
  private startBenchmarks(guestIp: string): {
    out: { set: string; get: string }
    procs: ChildProcess[]
    result: () => Omit<LoadResult, 'primaryAtStart' | 'primaryAtEnd'>
  } {
    const clients = this.o.benchClients ?? 4
    const iter = this.o.benchIterationRequests
    const benchArgs = ['-h', guestIp, '-c', String(clients), '-n', String(iter ?? 100000000), '-r', '10000']
    benchArgs.push('-d', '64', '-l', ...(iter ? ['--csv'] : ['-q']))
    const out = { set: '', get: '' }
    const rows: BenchRow[] = []
    const startedAt = Date.now()
    const procs = (['set', 'get'] as const).map((t) => {
      // stdbuf: CSV rows are few when replicated; without line buffering they sit in stdio's buffer.
      const child = iter
        ? this.startClient('stdbuf', ['-oL', 'redis-benchmark', ...benchArgs, '-t', t])
        : this.startClient('redis-benchmark', [...benchArgs, '-t', t])
      if (iter) {
        createInterface({ input: child.stdout! }).on('line', (line) => {
          const row = parseCsvRow(line)
          if (row) rows.push(row)
        })
      } else child.stdout?.on('data', (c: Buffer) => (out[t] = lastRate(out[t] + c.toString())))
      return child
    })
    return {
      out,
      procs,
      result: () => ({
        startedAt,
        endedAt: Date.now(),
        iterationRequests: iter ?? 0,
        clientsPerTest: clients,
        rows: [...rows],
      }),
    }
  }

  /**
   * SET and GET calls the guest's redis has served so far (redis-cli INFO commandstats). WHY up to
   * three tries: under heavy load the client namespace's ARP entry for the guest can fail ("No
   * route to host"); the counters only grow, so asking again is safe.
   */
  private async redisCounts(guestIp: string): Promise<RedisCounts> {
    const failures: string[] = []
    for (let attempt = 1; attempt <= 3; attempt++) {
      const r = await this.redisInfo(guestIp)
      if (r.ok) {
        const calls = (cmd: string) =>
          Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(r.text)?.[1] ?? 0)
        return { at: Date.now(), set: calls('set'), get: calls('get') }
      }
      failures.push(`try ${attempt}: ${r.error}`)
      this.check()
      await sleep(1000)
    }
    throw new Error(`redis-cli INFO commandstats failed: ${failures.join('; ')}`)
  }

  private async redisInfo(
    guestIp: string,
  ): Promise<{ ok: true; text: string } | { ok: false; error: string }> {
    const child = this.startClient('redis-cli', ['-h', guestIp, 'INFO', 'commandstats'])
    let text = ''
    let err = ''
    child.stdout?.on('data', (c: Buffer) => (text += c.toString()))
    child.stderr?.on('data', (c: Buffer) => (err += c.toString()))
    const t0 = Date.now()
    const timedOut = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL')
        resolve(true)
      }, 20_000)
      child.once('exit', () => {
        clearTimeout(timer)
        resolve(false)
      })
    })
    if (/^# Commandstats/m.test(text)) return { ok: true, text }
    const said = `${text}${err}`.trim().slice(0, 200)
    return { ok: false, error: timedOut ? `no answer in ${Date.now() - t0} ms` : `"${said}"` }
  }

  /**
   * The anchor: one QEMU redis guest (same image, RAM size, bridge, tap and client namespace) with
   * no replication. 'direct': the tap is QEMU's NIC backend, no Node in the path; 'relay': the
   * NIC's filter-redirectors divert every frame both ways through this Node process, which writes
   * it straight back (what the replicated runs pay for frame handling, without the log and syncs).
   * Needs `benchIterationRequests`. Cleans up like run().
   */
  async runUnreplicated(u: UnreplicatedOptions): Promise<LoadResult> {
    this.deadline = Date.now() + (this.o.deadlineMs ?? 900_000)
    let proc: QemuProcess | undefined
    let frames: FrameChannel | undefined
    try {
      const missing = unavailableReason()
      if (missing) throw new Error(missing)
      const image = findGuestImage() ?? (await ensureGuestImage())
      this.net = await TestNetwork.create()
      const net = this.net
      const tap = await net.addTap()
      const guestCidr = net.guestAddress(10)
      const guestIp = guestCidr.split('/')[0]
      const name = `${this.vmPrefix}u`
      const ramPath = `/dev/shm/plover-${name}.ram`
      this.ramFiles.push(ramPath)
      const memoryMiB = this.o.memoryMiB ?? 128
      this.print(`• unreplicated guest (${u.path}): ${memoryMiB} MiB on ${tap}, bridge ${net.bridge}`)
      proc = await launch({
        name,
        boot: { kernel: image.kernel, initrd: image.initrd, append: guestKernelAppend({ ip: guestCidr }) },
        memoryMiB,
        cpus: 1,
        ramPath,
        nic: { kind: 'tap', ifname: tap, redirectors: u.path === 'relay' },
      })
      await proc.waitForSerial(/PLOVER-GUEST-READY/, 300_000)
      if (u.path === 'relay') {
        const fc = new FrameChannel({ redirectors: proc.paths.redirectors!, qmp: proc.qmp })
        frames = fc
        await fc.open()
        fc.on('net-frame', (f) => void fc.toGuest(f).catch(() => {}))
        fc.on('guest-frame', (f) => void fc.toNet(f).catch(() => {}))
      }
      this.check()
      const start = await this.redisCounts(guestIp)
      const bench = this.startBenchmarks(guestIp)
      const loadS = this.o.loadBeforeKillS ?? 20
      for (let s = 0; s < loadS; s++) {
        await sleep(1000)
        this.check()
      }
      const result = bench.result()
      const end = await this.redisCounts(guestIp)
      for (const c of bench.procs) c.kill('SIGKILL')
      return { ...result, served: { start, end } }
    } finally {
      frames?.close()
      await proc?.stop({ removeRam: true }).catch(() => {})
      await this.cleanup()
    }
  }

  private membershipSeq = 0
  private readonly membershipWaiters = new Map<number, (r: MembershipResult) => void>()

  /** A membership change proposed by replica `leader` (IPC), like replicated-kv's /admin/membership. */
  private membership(leader: number, change: Omit<MembershipMessage, 'type' | 'seq'>): Promise<void> {
    const seq = ++this.membershipSeq
    const req: MembershipMessage = { type: 'membership', seq, ...change }
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`membership change ${JSON.stringify(change)} timed out`)),
        30_000,
      )
      this.membershipWaiters.set(seq, (r) => {
        clearTimeout(timer)
        if (r.ok) resolve()
        else reject(new Error(`membership change ${JSON.stringify(change)}: ${r.error}`))
      })
      this.children.get(leader)?.send(req)
    })
  }

  /**
   * Re-protection: remove the dead replica, start the spare with a fresh data dir and VM, add it
   * as a learner (it cannot be elected before its full sync), wait until the primary's outputs are
   * protected again and the leader has made it a voter by itself (vmsync's LearnerPromotion).
   * Failures are reported in notDone, not thrown.
   */
  private async reprotect(
    deadId: number,
    leaderId: number,
    startReplica: (id: number, tap: string, bootstrap: ReplicaProcessConfig['bootstrap']) => void,
    notDone: string[],
  ): Promise<DemoResult['reprotect']> {
    const p = this.print
    const restart = this.o.rejoin === 'restart'
    const spare = restart ? deadId : 4
    const t0 = Date.now()
    try {
      await this.membership(leaderId, { remove: deadId })
      p(
        restart
          ? `• re-protection: removed replica ${deadId}; restarting it on its old data directory (new QEMU, joins as learner)`
          : `• re-protection: removed replica ${deadId}; starting spare ${spare} (fresh VM, joins as learner)`,
      )
      if (restart) {
        // Its statuses and exits from before the kill say nothing about the new process.
        this.status.delete(spare)
        this.killed.delete(spare)
      }
      const tap = await this.net!.addTap()
      startReplica(spare, tap, [
        { id: leaderId, role: 'voter' },
        { id: 3, role: 'witness' },
        { id: spare, role: 'learner' },
      ])
      await this.waitFor('the spare to open its consensus replica', 300_000, () => this.status.get(spare))
      await this.membership(leaderId, { add: spare, role: 'learner' })
      const tJoin = Date.now()
      await this.waitFor('the primary to be protected again (full sync of the spare)', 300_000, () => {
        const s = this.status.get(leaderId)?.vm
        return s?.protected && s.fullSyncs >= 1 && this.status.get(spare)?.vm?.trusted
      })
      const protectedMs = Date.now() - t0
      const fullSyncMs = Date.now() - tJoin
      p(
        `  outputs protected again ${(protectedMs / 1000).toFixed(1)} s after the kill (its full sync ${(fullSyncMs / 1000).toFixed(1)} s after it was added)`,
      )
      let voter = false
      try {
        await this.waitFor('the leader to make the spare a voter', 30_000, () =>
          this.status.get(leaderId)?.members.split(' ').includes(`${spare}:voter`),
        )
        voter = true
        p(
          `  spare ${spare} is now a voter (promoted by the leader): members ${this.status.get(leaderId)?.members ?? '?'}`,
        )
      } catch (err) {
        notDone.push(`spare did not become a voter: ${(err as Error).message}`)
      }
      return { protectedMs, fullSyncMs, voter }
    } catch (err) {
      this.check()
      notDone.push(`re-protection: ${(err as Error).message}`)
      p(`  re-protection failed: ${(err as Error).message}`)
      return undefined
    }
  }

  private line(id: number, checker: CheckerHandle | undefined): string {
    const s = this.status.get(id)?.vm
    if (!s) return `replica ${id}: no status`
    return (
      `primary ${id}: syncs ${s.syncs} (full ${s.fullSyncs}, failed ${s.syncFailures}), last pause ${s.lastPauseMs.toFixed(0)} ms, ` +
      `identical ${s.lastIdenticalPercent.toFixed(1)} %, inputs ${s.inputFrames}, released ${s.releasedFrames}, held ${s.heldFrames}, ` +
      (checker ? `checker acks ${checker.acks.length}` : `input bytes ${s.inputBytes ?? 0}`)
    )
  }

  /** One replica process: its config file in the temp dir (it holds the cluster key: 0600), IPC. */
  private startReplica(cfg: ReplicaProcessConfig): void {
    const file = join(this.tmp!, `replica-${cfg.id}.json`)
    writeFileSync(file, `${JSON.stringify(cfg, null, 2)}\n`, { mode: 0o600 })
    const child = spawn(process.execPath, ['--import', 'tsx', REPLICA_MAIN, '--config', file], {
      cwd: PKG_DIR,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    })
    this.children.set(cfg.id, child)
    const logLine = (line: string) => {
      if (this.o.replicaLog) this.o.replicaLog(cfg.id, line)
      else if (this.cleaning)
        return // shutdown noise (links closing as replicas stop)
      else if (/"level":"(warn|error)"/.test(line) || !line.startsWith('{'))
        this.print(`  [replica ${cfg.id}] ${line}`)
    }
    createInterface({ input: child.stdout! }).on('line', logLine)
    createInterface({ input: child.stderr! }).on('line', logLine)
    child.on('message', (m: ReplicaMessage) => {
      if (m.type === 'status') this.status.set(m.id, m)
      else if (m.type === 'sync-report') this.o.onSyncReport?.(m)
      else if (m.type === 'membership-result') this.membershipWaiters.get(m.seq)?.(m)
      else this.events.push(m)
    })
    child.on('exit', (code, signal) => {
      if (!this.killed.has(cfg.id) && !this.cleaning) {
        this.events.push({
          type: 'event',
          id: cfg.id,
          name: 'fatal',
          at: Date.now(),
          detail: `exited (${code ?? signal})`,
        })
      }
    })
  }

  private startClient(command: string, args: string[]): ChildProcess {
    const child = this.net!.spawnInNamespace(command, args)
    this.clients.add(child)
    child.on('exit', () => this.clients.delete(child))
    child.stderr?.resume()
    return child
  }

  private startChecker(guestIp: string): CheckerHandle {
    const child = spawn(
      'ip',
      ['netns', 'exec', this.net!.namespace, process.execPath, '--import', 'tsx', CHECKER_MAIN, guestIp],
      {
        cwd: PKG_DIR,
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    )
    this.clients.add(child)
    child.on('exit', () => this.clients.delete(child))
    child.stderr?.on('data', (c: Buffer) => this.print(`  [checker] ${c.toString().trim()}`))
    return new CheckerHandle(child)
  }

  /** Idempotent: replica processes (SIGTERM, then SIGKILL), clients, network, RAM files, temp dir. */
  cleanup(): Promise<void> {
    this.cleaning ??= (async () => {
      // A stopped process takes SIGTERM only once it runs again.
      for (const id of [...this.frozen.keys()]) this.thawPids(id)
      for (const c of this.clients) c.kill('SIGKILL')
      const exits = [...this.children.values()]
        .filter((c) => c.exitCode === null && c.signalCode === null)
        .map(
          (c) =>
            new Promise<void>((resolve) => {
              const timer = setTimeout(() => c.kill('SIGKILL'), 15_000)
              c.once('exit', () => {
                clearTimeout(timer)
                resolve()
              })
              c.kill('SIGTERM')
            }),
        )
      await Promise.all(exits)
      await this.net?.dispose().catch(() => {})
      for (const f of this.ramFiles) rmSync(f, { force: true })
      // The launcher's run dirs ($TMPDIR/plover-qemu/<name>) of QEMUs killed with their replica.
      const runRoot = join(tmpdir(), 'plover-qemu')
      try {
        for (const d of readdirSync(runRoot)) {
          if (d.startsWith(this.vmPrefix)) rmSync(join(runRoot, d), { recursive: true, force: true })
        }
      } catch {}
      if (this.tmp) rmSync(this.tmp, { recursive: true, force: true })
    })()
    return this.cleaning
  }
}

/** `"SET","1234.57","3.1","0.5","2.9","5.1","7.9","12.3"` (redis-benchmark 7 --csv), else undefined. */
export function parseCsvRow(line: string): BenchRow | undefined {
  const f = line.split(',').map((x) => x.replace(/"/g, '').trim())
  if ((f[0] !== 'SET' && f[0] !== 'GET') || f.length < 8) return undefined
  const n = f.slice(1, 8).map(Number)
  if (n.some((x) => !Number.isFinite(x))) return undefined
  return {
    test: f[0],
    at: Date.now(),
    rps: n[0],
    avgMs: n[1],
    p50Ms: n[3],
    p95Ms: n[4],
    p99Ms: n[5],
    maxMs: n[6],
  }
}

function lastRate(text: string): string {
  const parts = text.split(/[\r\n]/).filter((l) => l.trim() !== '')
  return parts.at(-1)?.trim() ?? ''
}

export class CheckerHandle {
  connected = false
  readonly acks: number[] = []
  closed: string | undefined
  private verdict:
    | ((v: Omit<CheckerVerdict, 'acksBeforeKill' | 'acksAfterKill'> | undefined) => void)
    | undefined

  constructor(private readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let m: Record<string, unknown>
      try {
        m = JSON.parse(line)
      } catch {
        return
      }
      if (m.type === 'connected') this.connected = true
      else if (m.type === 'ack') this.acks.push(m.at as number)
      else if (m.type === 'closed') this.closed = String(m.reason)
      else if (m.type === 'verified')
        this.verdict?.(m as unknown as Omit<CheckerVerdict, 'acksBeforeKill' | 'acksAfterKill'>)
    })
    child.on('exit', () => this.verdict?.(undefined))
  }

  lastAckBefore(t: number): number {
    let last = 0
    for (const a of this.acks) if (a <= t) last = a
    return last
  }

  verify(timeoutMs = 180_000): Promise<Omit<CheckerVerdict, 'acksBeforeKill' | 'acksAfterKill'> | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(undefined), timeoutMs)
      this.verdict = (v) => {
        clearTimeout(timer)
        this.verdict = undefined
        resolve(v)
      }
      this.child.stdin?.write('verify\n')
    })
  }
}
