// One replica of the QEMU example: a consensus replica (WAL, authenticated TCP) and, unless it is
// the witness, a QEMU guest running redis on a tap, vmsync's VmReplica (input coordinator, output
// guard, sync protocol) and an idle monitor on the QEMU process; plus the HTTP endpoint.
//
// Frames: on the primary, frames arriving from its tap ('net-frame') go into the log through the
// input coordinator; every committed input is injected into BOTH guests in log order; the
// primary's guest outputs are held by the output guard and written to its tap when their sync's
// SyncDone commits. A backup ignores frames arriving on its own tap and its guest's outputs are
// discarded by its guard. The consensus leader is the primary.
//
// close() may be called at any point of start() (SIGTERM while the guest boots): every resource
// registers its cleanup before it is created, and start() stops at its next step.
import { execFile } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { promisify } from 'node:util'
import { MemberRole, type Membership, type NodeId, type PeerAddress, Replica } from '@plover/consensus'
import { IdleMonitor } from '@plover/idle-monitor'
import {
  guestKernelAppend,
  launch,
  type QemuProcess,
  QemuVm,
  StandbyPool,
  standbyConfig,
  type VmConfig,
} from '@plover/qemu'
import {
  ConsensusOrderedLog,
  type HandoverResult,
  handOverPrimacy,
  isFullSync,
  LearnerPromotion,
  LogCompaction,
  type MembershipRequest,
  OperatorEndpoint,
  PageHasher,
  PrimacyGate,
  proposeMembership,
  readOperatorTls,
  SyncLinks,
  SyncMode,
  type SyncReport,
  SyncScheduler,
  VmReplica,
  VmsyncMetrics,
  vmBackupCaughtUp,
} from '@plover/vmsync'
import type { ReplicaEvent, ReplicaMessage, ReplicaProcessConfig, ReplicaStatus } from './config.js'
import { ConfigError } from './config-error.js'
import { FollowingCpuProbe } from './following-cpu-probe.js'
import { self } from './load-config.js'
import type { Logger } from './logger.js'
import { bindError } from './preflight.js'
import { formatSamples, type Sample } from './prom-text.js'

const run = promisify(execFile)
const ROLE = { voter: MemberRole.Voter, witness: MemberRole.Witness, learner: MemberRole.Learner }
const ROLE_NAME = ['voter', 'witness', 'learner']
const CONSENSUS_ROLES = ['follower', 'precandidate', 'candidate', 'leader', 'witness']
const START_TIME_S = Math.round(Date.now() / 1000 - process.uptime())

export interface ProcessHooks {
  /** IPC to the orchestrator (a no-op when the process runs standalone). */
  send(m: ReplicaMessage): void
  /** A fatal runtime error (QEMU or the consensus replica died): the caller shuts down, exit 1. */
  fatal(reason: string): void
}

/** Thrown by start() when close() was called meanwhile. */
export class StartAborted extends Error {
  override name = 'StartAborted'
}

interface VmCounters {
  inputFrames: number
  inputBytes: number
  released: number
  ignored: number
  syncs: number
  fullSyncs: number
  failures: number
  lastPauseMs: number
  lastIdentical: number
}

async function removeTap(name: string): Promise<void> {
  await run('ip', ['link', 'del', name]).catch(() => {})
}

export class ReplicaProcess {
  private readonly cleanups: Array<() => Promise<unknown>> = []
  private closing: Promise<void> | undefined
  private replica: Replica | undefined
  /** A VM voter: hands leadership to its synced backup (a planned stop). */
  private handOverPrimacy: ((timeoutMs: number) => Promise<HandoverResult>) | undefined
  private compaction: LogCompaction | undefined
  private vm:
    | {
        readonly vr: VmReplica
        readonly qvm: QemuVm
        readonly metrics: VmsyncMetrics
        readonly n: VmCounters
        readonly hasher: PageHasher
      }
    | undefined
  private leaderships = 0
  /** Standby taps this process created and has not removed yet (never the tap it was given). */
  private readonly createdTaps = new Set<string>()

  constructor(
    private readonly cfg: ReplicaProcessConfig,
    private readonly logger: Logger,
    private readonly hooks: ProcessHooks,
  ) {}

  private event(name: ReplicaEvent['name'], detail?: string): void {
    this.hooks.send({ type: 'event', id: this.cfg.id, name, at: Date.now(), ...(detail ? { detail } : {}) })
  }

  private guard(): void {
    if (this.closing) throw new StartAborted('stopped while starting')
  }

  /** Creates a resource whose cleanup is registered first (it waits for a creation in flight). */
  private async own<T>(create: () => Promise<T>, stop: (x: T) => Promise<unknown>): Promise<T> {
    this.guard()
    const creating = create()
    this.cleanups.push(async () => {
      const x = await creating.catch(() => undefined)
      if (x !== undefined) await stop(x)
    })
    const x = await creating
    this.guard()
    return x
  }

  private onCleanup(f: () => Promise<unknown>): void {
    this.guard()
    this.cleanups.push(f)
  }

  async start(): Promise<void> {
    const cfg = this.cfg
    const me = self(cfg)
    const log = this.logger

    // --- HTTP first: /metrics and /status answer while the guest boots ---
    const m = cfg.metrics
    if (m) {
      const tls =
        m.tls &&
        (await readOperatorTls(m.tls, 'metrics.tls').catch((err: Error) => {
          throw new ConfigError(err.message) // exit 78
        }))
      const http = new OperatorEndpoint({
        host: m.host,
        port: m.port,
        ...(m.adminToken === undefined ? {} : { adminToken: m.adminToken }),
        ...(tls ? { tls } : {}),
        handlers: {
          metrics: () => this.metricsText(),
          // undefined while the guest boots: 503
          status: () => this.status(),
          membership: (req) => this.changeMembership(req),
        },
      })
      await this.own(
        () =>
          http
            .listen()
            .then(() => http)
            .catch((err) => Promise.reject(bindError(err, 'metrics', m.host, m.port))),
        (h) => h.close(),
      )
      log.info('HTTP endpoint listening', { url: `http://${m.host}:${m.port}/metrics`, port: m.port })
    }

    // --- the VM first: a voter joins the election only once its guest serves redis ---
    let vm: QemuVm | undefined
    let hasher: PageHasher | undefined
    const vs = cfg.vm
    let tapSeq = 0
    const tapOf = new Map<QemuProcess, string>()
    if (vs) {
      // Registered first, so it runs last: the RAM file goes even if QEMU was killed.
      this.onCleanup(() => rm(vs.ramPath, { force: true }))
      const vmConfig: VmConfig = {
        name: vs.name,
        boot: { kernel: vs.kernel, initrd: vs.initrd, append: guestKernelAppend({ ip: vs.ip }) },
        memoryMiB: vs.memoryMiB,
        cpus: 1,
        ramPath: vs.ramPath,
        nic: { kind: 'tap', ifname: vs.tap, redirectors: true },
      }
      const proc = await this.own(
        () => launch(vmConfig),
        (p) => p.stop({ removeRam: true }),
      )
      log.info('QEMU started, waiting for the guest', { pid: proc.pid, tap: vs.tap })
      await proc.waitForSerial(/PLOVER-GUEST-READY/, 300_000)
      this.guard()
      log.info('guest ready (redis answers inside)', { pid: proc.pid })
      // Standby taps go after the standbys and the VM have stopped (cleanups run in reverse).
      this.onCleanup(async () => {
        for (const tap of [...this.createdTaps]) await this.removeTap(tap)
      })
      // One tap per QEMU: a standby cannot open the tap the running backup QEMU holds. Standbys
      // start only when a migration-stream device state arrives (a primary with
      // vm.deviceState "migration"); a snapshot loads into this replica's own QEMU.
      const standbys = new StandbyPool({
        // WHY two, armed: a standby takes 50–250 ms to start here and syncs come every ~130 ms;
        // arming moves two QMP round trips out of the backup's apply (bench/e2e step table).
        size: 2,
        armIncoming: true,
        spawn: async (seq) => {
          const tap = `${vs.tapPrefix}r${cfg.id}${(tapSeq++).toString(36)}`
          this.createdTaps.add(tap)
          try {
            await run('ip', ['tuntap', 'add', 'dev', tap, 'mode', 'tap'])
            await run('ip', ['link', 'set', tap, 'master', vs.bridge])
            await run('ip', ['link', 'set', tap, 'up'])
            const p = await launch(
              standbyConfig(vmConfig, { name: `${vs.name}-sb${seq}`, ramPath: vs.ramPath, tapIfname: tap }),
            )
            tapOf.set(p, tap)
            return p
          } catch (err) {
            await this.removeTap(tap)
            throw err
          }
        },
      })
      this.onCleanup(() => standbys.close())
      hasher = await this.own(
        async () => new PageHasher({ threads: 1, fileReads: vs.hashFileReads ?? 'auto' }),
        (h) => h.close(),
      )
      const h = hasher
      vm = await this.own(
        () =>
          QemuVm.open({
            process: proc,
            hasher: h,
            standbys,
            removeRamOnClose: true,
            deviceStateFormat: vs.deviceState ?? 'snapshot',
          }),
        (v) => v.close(),
      )
      vm.host.on('swapped', (next, previous) => {
        log.debug('device state loaded into a fresh QEMU', { pid: next.pid, previous: previous.pid })
        const tap = tapOf.get(previous)
        tapOf.delete(previous)
        if (tap) void previous.exited.then(() => this.removeTap(tap))
      })
      vm.on('exit', (info) => {
        if (this.closing) return
        log.error('QEMU exited', { ...info })
        this.hooks.fatal(`QEMU exited: ${info.reason}`)
      })
      this.event('vm-ready', String(proc.pid))
    }

    // --- consensus ---
    const peers = new Map<NodeId, PeerAddress>()
    for (const r of cfg.replicas)
      if (r.id !== cfg.id) peers.set(r.id, { host: r.host, port: r.consensusPort })
    const membership: Membership = { members: cfg.bootstrap.map((b) => ({ id: b.id, role: ROLE[b.role] })) }
    const replica = await this.own(
      () =>
        Replica.open({
          id: cfg.id,
          dir: `${cfg.dataDir}/consensus`,
          listen: { host: me.host, port: me.consensusPort },
          peers,
          membership,
          clusterKey: Buffer.from(cfg.clusterKeyHex, 'hex'),
          tickMs: cfg.tickMs,
          electionTicks: cfg.electionTicks,
          preVote: true,
          checkQuorum: true,
        }).catch((err) => Promise.reject(bindError(err, 'consensus', me.host, me.consensusPort))),
      (r) => r.close(),
    )
    this.replica = replica
    const olog = new ConsensusOrderedLog(replica)
    this.onCleanup(async () => olog.detach())
    // Every member, the witness included, forgets the log before the last sync cut.
    const compaction = new LogCompaction(olog, olog, { minEntries: cfg.compactAfterEntries })
    this.compaction = compaction
    this.onCleanup(async () => compaction.detach())
    compaction.on('compacted', (index, epoch) => log.debug('log compacted', { index, epoch }))
    compaction.on('error', (err) => log.warn('log compaction failed', { error: err }))
    replica.on('error', (err) => {
      if (this.closing) return
      log.error('consensus replica stopped', { error: err })
      this.hooks.fatal(`consensus replica stopped: ${err.message}`)
    })
    replica.on('leader', (leader, term) => {
      if (leader === cfg.id) this.leaderships++
      log.info('leader changed', { leader, term })
    })
    log.info('consensus replica open', { role: replica.role, term: replica.term, membership: this.members() })
    if (!vm || !vs || !hasher) return

    // --- VM replica ---
    const qvm = vm
    // Still in the turn the replica opened in: no record has been applied yet, and the VM
    // replica and the primacy gate (below) see every one.
    const vr = new VmReplica({
      log: olog,
      vm: qvm,
      tracker: qvm.dirty,
      // The sync takes the tracker's digests only from the very hasher object it hashes with: a
      // wrapper turns the reuse off (reuseScanDigests: false).
      hasher: cfg.reuseScanDigests === false ? { hash: (s, pages) => hasher.hash(s, pages) } : hasher,
      role: 'backup',
      needFull: true,
      ...(cfg.syncMode ? { mode: cfg.syncMode } : {}),
      ...(cfg.precopy === false ? { precopy: false as const } : {}),
      quietMaxMs: cfg.sync.quietMaxMs ?? 50,
      ...(cfg.sync.quietWindowMs ? { quietWindowMs: cfg.sync.quietWindowMs } : {}),
      // TCG guests on a loaded 2-core host: a full sync of the RAM file takes seconds.
      peerTimeoutMs: 60_000,
      followLeadership: false,
    })
    this.onCleanup(() => vr.close())
    // --- leadership = primary, if this VM may serve (vmsync's PrimacyGate) ---
    const gate = new PrimacyGate({ replica, log: olog, vm: vr })
    this.onCleanup(async () => gate.close())
    gate.on('promoted', ({ trusted, freshLog }) => {
      log.info('promoted to primary: continuing from this VM state', { trusted, freshLog })
      this.event('promoted', String(qvm.process.pid))
    })
    gate.on('demoted', () => {
      log.warn('lost leadership: demoted to backup, held outputs dropped')
      this.event('demoted')
    })
    gate.on('refused', () =>
      log.error('leader with an untrusted VM: refusing to act as primary, handing leadership over'),
    )
    gate.on('transfer', (to) => log.warn('transferring leadership', { to }))
    gate.on('transfer-failed', (reason) => log.error('leadership not handed over', { reason }))
    const metrics = new VmsyncMetrics({ labels: { replica: String(cfg.id) } })
    metrics.watch(vr)
    const n: VmCounters = {
      inputFrames: 0,
      inputBytes: 0,
      released: 0,
      ignored: 0,
      syncs: 0,
      fullSyncs: 0,
      failures: 0,
      lastPauseMs: 0,
      lastIdentical: 0,
    }
    this.vm = { vr, qvm, metrics, n, hasher }
    let readPathLogged = false
    qvm.host.on('net-frame', (f) => {
      // Only the primary's tap feeds the log; a backup's tap sees the bridge's floods: ignored.
      if (vr.role === 'primary' && olog.isLeader) {
        n.inputFrames++
        n.inputBytes += f.length
        vr.pushInput(f)
      } else n.ignored++
    })
    vr.on('release', (f) => {
      if (!olog.isLeader) return // belt and braces: only the leader's guest talks to clients
      n.released++
      qvm.frames?.toNet(f).catch(() => {})
    })
    vr.on('sync-completed', (rep: SyncReport) => {
      // Once: an operator must see when the mapping addon is missing and scans fall back to pread.
      if (!readPathLogged && hasher.lastFileRead) {
        readPathLogged = true
        if (hasher.lastFileRead === 'mmap') log.info('guest RAM is hashed through a memory mapping')
        else
          log[vs.hashFileReads === 'pread' ? 'info' : 'warn'](
            'guest RAM is hashed with pread (slower scans)',
            {
              ...(hasher.mappedFiles?.reason ? { reason: hasher.mappedFiles.reason } : {}),
            },
          )
      }
      if (cfg.reportSyncs)
        this.hooks.send({
          type: 'sync-report',
          id: cfg.id,
          at: Date.now(),
          side: rep.side,
          mode: SyncMode[rep.mode] ?? String(rep.mode),
          dirtyPages: rep.dirtyPages,
          peerDirtyPages: rep.peerDirtyPages,
          unionPages: rep.unionPages,
          identicalPages: rep.identicalPages,
          identicalPct: rep.identicalPct,
          divergentPages: rep.divergentPages,
          bytesSent: rep.bytesSent,
          bytesReceived: rep.bytesReceived,
          deviceStateBytes: rep.deviceStateBytes,
          deviceStateSentBytes: rep.deviceStateSentBytes,
          pauseMs: rep.pauseMs,
          totalMs: rep.totalMs,
          hashMs: rep.hashMs,
          stepsMs: rep.stepsMs,
          precopiedPages: rep.precopiedPages ?? 0,
        })
      if (rep.side !== 'primary') return
      n.syncs++
      if (isFullSync(rep.mode)) n.fullSyncs++
      n.lastPauseMs = rep.pauseMs
      n.lastIdentical = rep.identicalPct
      log.debug('sync completed', { ...rep })
      if (isFullSync(rep.mode))
        log.info('full sync completed', {
          mode: SyncMode[rep.mode],
          pauseMs: rep.pauseMs,
          pages: rep.unionPages,
          sentPages: rep.divergentPages,
          precopiedPages: rep.precopiedPages ?? 0,
        })
    })
    vr.on('sync-failed', (f) => {
      if (f.side === 'primary') n.failures++
      log[f.error.name === 'SyncAbortedError' ? 'debug' : 'warn']('sync failed', {
        side: f.side,
        epoch: f.epoch,
        reason: f.reason,
      })
    })
    vr.on('unprotected', (reason) => {
      log.warn('outputs unprotected (no synced backup)', { reason })
      this.event('unprotected', reason)
    })
    vr.on('protected', () => {
      log.info('outputs protected: a synced backup exists')
      this.event('protected')
    })
    vr.on('fault', (e) => log.error('input delivery fault: VM refused a frame', { error: e }))
    vr.on('missed-inputs', (from, through) =>
      log.warn('log compacted past inputs this VM had not applied: waiting for a full sync', {
        from,
        through,
      }),
    )

    // --- sync links: the backup dials the leader (and names itself) ---
    let backupId: number | undefined
    const links = new SyncLinks({
      host: me.host,
      port: me.syncPort!,
      psk: Buffer.from(cfg.clusterKeyHex, 'hex'),
      logger: log,
      isLeader: () => olog.isLeader,
      accepting: () => olog.isLeader && vr.role === 'primary',
      leaderAddress: () => {
        const leader = cfg.replicas.find((r) => r.id === replica.leader && r.id !== cfg.id)
        return leader?.syncPort ? { id: leader.id, host: leader.host, port: leader.syncPort } : undefined
      },
      selfId: cfg.id,
      onLink: (link, direction, peer) => {
        if (direction === 'from-backup') backupId = peer
        vr.attachLink(link)
      },
    })
    await this.own(
      () =>
        links
          .listen()
          .then(() => links)
          .catch((err) => Promise.reject(bindError(err, 'sync', me.host, me.syncPort!))),
      (l) => l.close(),
    )
    replica.on('leader', () => links.refresh())
    this.handOverPrimacy = (timeoutMs) => handOverPrimacy({ replica, vm: vr, backupId, timeoutMs })
    // A learner whose full sync protected our outputs becomes a voter (docs/operations.md).
    const promotion = new LearnerPromotion({ replica, vm: vr, backupId: () => backupId })
    this.onCleanup(async () => promotion.close())
    promotion.on('promoted', (id, index) =>
      log.info('learner promoted to voter after its full sync', { id, index, membership: this.members() }),
    )
    promotion.on('failed', (id, err) => log.debug('learner promotion refused, retrying', { id, error: err }))

    // --- idle monitor: syncs when the QEMU process is idle, at the latest every maxIntervalMs ---
    const monitor = new IdleMonitor({
      cpu: new FollowingCpuProbe(() => qvm.process.pid),
      output: {
        heldBytes: () => vr.guard.stats().heldBytes,
        oldestHeldAgeMs: () => vr.guard.stats().oldestHeldAgeMs,
        framesOut: () => vr.guard.stats().emittedFrames,
      },
      periodMs: cfg.sync.periodMs,
      policy: {
        maxIntervalMs: cfg.sync.maxIntervalMs,
        minIntervalMs: cfg.sync.minIntervalMs,
        maxHeldAgeMs: cfg.sync.maxHeldAgeMs,
        ...(cfg.sync.outputSettledSamples ? { outputSettledSamples: cfg.sync.outputSettledSamples } : {}),
      },
      calibration: { windowMs: 1000, minIntervals: 10 },
    })
    this.onCleanup(async () => monitor.close())
    // Only a primary with a connected, caught-up backup syncs; otherwise the policy's clock restarts.
    const fixedMs = cfg.sync.fixedIntervalMs
    const scheduler = new SyncScheduler({
      replica: vr,
      ...(fixedMs ? {} : { trigger: monitor }),
      ready: () => this.backupCaughtUp(),
    })
    this.onCleanup(async () => scheduler.close())
    if (fixedMs) {
      // Benchmarks: a fixed sync interval instead of the idle monitor's verdicts.
      const fixed = setInterval(() => scheduler.syncNow('fixed-interval'), fixedMs)
      this.onCleanup(async () => clearInterval(fixed))
    } else monitor.start()
    olog.on('leadership', () => links.refresh())
  }

  private async removeTap(name: string): Promise<void> {
    await removeTap(name)
    this.createdTaps.delete(name)
  }

  /** Leader only: some other VM replica (voter or learner) has (almost) all of our log. */
  private backupCaughtUp(): boolean {
    return this.replica ? vmBackupCaughtUp(this.replica) : false
  }

  private members(): string {
    const m = this.replica?.membership
    return m ? m.members.map((x) => `${x.id}:${ROLE_NAME[x.role]}`).join(' ') : ''
  }

  /** The IPC status message, and GET /status; undefined until the consensus replica is open. */
  status(): ReplicaStatus | undefined {
    const replica = this.replica
    if (!replica) return undefined
    const base = {
      type: 'status' as const,
      id: this.cfg.id,
      pid: process.pid,
      consensusRole: replica.role,
      leader: replica.leader,
      term: replica.term,
      commitIndex: replica.commitIndex,
      logFirstIndex: replica.firstIndex,
      compactions: this.compaction?.compactions ?? 0,
      members: this.members(),
    }
    const v = this.vm
    if (!v) return base
    const g = v.vr.guard.stats()
    return {
      ...base,
      vm: {
        role: v.vr.role,
        trusted: v.vr.trusted,
        protected: g.isProtected,
        hasBackup: v.vr.primary?.hasBackup ?? false,
        qemuPid: v.qvm.process.pid,
        syncs: v.n.syncs,
        fullSyncs: v.n.fullSyncs,
        syncFailures: v.n.failures,
        lastPauseMs: v.n.lastPauseMs,
        lastIdenticalPercent: v.n.lastIdentical,
        inputFrames: v.n.inputFrames,
        releasedFrames: v.n.released,
        discardedOwnTapFrames: v.n.ignored,
        heldFrames: g.heldFrames,
        inputBytes: v.n.inputBytes,
      },
    }
  }

  /**
   * A planned stop of the primary: hand leadership to the synced backup first, so its VM takes
   * over now rather than after an election timeout. Does nothing on any other replica.
   */
  async handOver(timeoutMs: number): Promise<void> {
    if (!this.handOverPrimacy || this.replica?.role !== 'leader') return
    const r = await this.handOverPrimacy(timeoutMs)
    if ('handedTo' in r) {
      this.logger.info('primacy handed over', { to: r.handedTo, term: r.term })
      this.event('handed-over', String(r.handedTo))
    } else this.logger.warn('primacy not handed over: stopping anyway (a failover)', { reason: r.skipped })
  }

  /**
   * A checked membership change (leader only; IPC from the orchestrator or POST
   * /admin/membership). A replacement backup joins as a learner first.
   */
  async changeMembership(req: MembershipRequest): Promise<{ index: number; membership: string }> {
    const replica = this.replica
    if (!replica) throw new Error('replica not open yet')
    const index = await proposeMembership(
      replica,
      req,
      (id) => this.cfg.replicas.find((r) => r.id === id)?.role,
    )
    this.logger.info('membership changed', { ...req, index, membership: this.members() })
    return { index, membership: this.members() }
  }

  /** GET /metrics: consensus state and process gauges; a voter adds its VM counters and vmsync's. */
  async metricsText(): Promise<string> {
    const r = this.replica
    const g = (name: string, help: string, value: number, labels?: Record<string, string>): Sample => ({
      name,
      help,
      type: 'gauge',
      value,
      ...(labels ? { labels } : {}),
    })
    const c = (name: string, help: string, value: number): Sample => ({ name, help, type: 'counter', value })
    const p = 'plover_replica_'
    const samples: Sample[] = [
      g(`${p}up`, '1 once the consensus replica is open (0 while the guest boots)', r ? 1 : 0),
      g(
        `${p}is_leader`,
        '1 while this replica is the consensus leader (= primary)',
        r?.role === 'leader' ? 1 : 0,
      ),
      g(`${p}is_witness`, '1 for a witness', self(this.cfg).role === 'witness' ? 1 : 0),
      ...CONSENSUS_ROLES.map((role) =>
        g(`${p}consensus_role`, 'Consensus role (1 for the current one)', r?.role === role ? 1 : 0, { role }),
      ),
      g(`${p}leader_id`, 'Current leader id (0 = unknown)', r?.leader ?? 0),
      g(`${p}term`, 'Consensus term', r?.term ?? 0),
      g(`${p}commit_index`, 'Consensus commit index', r?.commitIndex ?? 0),
      g(`${p}log_first_index`, 'First index still in the log (compacted before it)', r?.firstIndex ?? 0),
      c(`${p}log_compactions_total`, 'Log compactions at sync cuts', this.compaction?.compactions ?? 0),
      g(`${p}members`, 'Members in the current membership', r?.membership.members.length ?? 0),
      c(`${p}leaderships_total`, 'Times this replica became leader', this.leaderships),
    ]
    const v = this.vm
    if (v) {
      const gs = v.vr.guard.stats()
      samples.push(
        g(`${p}vm_primary`, '1 while the VM acts as primary', v.vr.role === 'primary' ? 1 : 0),
        ...(v.hasher.lastFileRead
          ? [
              g(
                `${p}vm_hash_reads_mapped`,
                '1 when guest RAM is hashed through a memory mapping, 0 with pread (known after the first sync)',
                v.hasher.lastFileRead === 'mmap' ? 1 : 0,
              ),
            ]
          : []),
        g(`${p}vm_trusted`, '0 while the VM waits for a full sync', v.vr.trusted ? 1 : 0),
        g(`${p}outputs_protected`, '1 while outputs are held for a synced backup', gs.isProtected ? 1 : 0),
        g(`${p}vm_has_backup`, '1 while a backup is linked to this primary', v.vr.primary?.hasBackup ? 1 : 0),
        g(`${p}qemu_pid`, 'Pid of the QEMU process running the guest', v.qvm.process.pid),
        c(`${p}syncs_total`, 'Syncs completed as primary', v.n.syncs),
        c(`${p}full_syncs_total`, 'Full syncs completed as primary', v.n.fullSyncs),
        c(`${p}sync_failures_total`, 'Syncs failed as primary', v.n.failures),
        g(`${p}last_sync_pause_ms`, 'VM pause of the last sync as primary (ms)', v.n.lastPauseMs),
        g(
          `${p}last_identical_pages_percent`,
          'Identical share of the last sync as primary',
          v.n.lastIdentical,
        ),
        c(`${p}input_frames_total`, 'Frames from the tap put into the log as primary', v.n.inputFrames),
        c(`${p}input_bytes_total`, 'Bytes of those frames', v.n.inputBytes),
        c(`${p}output_released_frames_total`, 'Guest output frames written to the tap', v.n.released),
        c(`${p}discarded_own_tap_frames_total`, 'Frames on its own tap ignored as backup', v.n.ignored),
        g(`${p}output_held_frames`, 'Guest output frames held until their sync commits', gs.heldFrames),
      )
    }
    const mem = process.memoryUsage()
    const cpu = process.cpuUsage()
    samples.push(
      c('process_cpu_user_seconds_total', 'User CPU time of the replica process (s)', cpu.user / 1e6),
      c('process_cpu_system_seconds_total', 'System CPU time of the replica process (s)', cpu.system / 1e6),
      g('process_resident_memory_bytes', 'Resident memory of the replica process', mem.rss),
      g('process_heap_used_bytes', 'V8 heap in use', mem.heapUsed),
      g('process_start_time_seconds', 'Start of the replica process (Unix time, s)', START_TIME_S),
      g('process_uptime_seconds', 'Seconds since the replica process started', process.uptime()),
    )
    const own = formatSamples(samples, { replica: String(this.cfg.id) })
    return v ? own + (await v.metrics.metrics()) : own
  }

  /**
   * Clean shutdown: stop the idle monitor, the sync links, the VM (QEMU, standbys, their taps,
   * the RAM file), the consensus replica (WAL) and the HTTP server. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      while (this.cleanups.length) await this.cleanups.pop()!().catch(() => {})
    })()
    return this.closing
  }
}
