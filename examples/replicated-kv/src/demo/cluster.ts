// The demo's replica processes on loopback: real OS processes (`node --import tsx
// src/replica/main.ts --config …`), each with its own data directory under one temp root, its
// JSON config, and its structured log in a file. Everything is removed by cleanup(), which the
// demo runs on every exit path (normal end, error, Ctrl-C).
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { MemberKind, ReplicaAddress, SyncTuning } from '../config/replica-config.js'
import { httpGet, type MetricMap, parsePrometheus } from './metrics-scrape.js'
import { PeerRelay } from './peer-relay.js'
import { freePorts } from './ports.js'
import { until } from './until.js'

const EXAMPLE_DIR = fileURLToPath(new URL('../..', import.meta.url))
const REPLICA_MAIN = fileURLToPath(new URL('../replica/main.ts', import.meta.url))

export interface ReplicaStatus {
  readonly id: number
  readonly role?: string
  readonly leader?: number
  readonly term?: number
  readonly commitIndex?: number
  readonly membership?: string
  readonly vm: null | {
    readonly role: string
    readonly trusted: boolean
    readonly protected: boolean
    readonly hasBackup: boolean
    readonly entries: number
  }
}

/** The bootstrap membership: two VM voters and the witness. */
export const TRIO: readonly { id: number; role: MemberKind }[] = [
  { id: 1, role: 'voter' },
  { id: 2, role: 'voter' },
  { id: 3, role: 'witness' },
]

export class ReplicaProc {
  child: ChildProcess | undefined
  exit: { code: number | null; signal: string | null } | undefined
  /** Last metrics scraped while it was alive (a killed replica keeps its last numbers). */
  lastMetrics: MetricMap | undefined
  /** The last metrics of its earlier processes (it was killed and started again). */
  readonly earlierRuns: MetricMap[] = []

  constructor(
    readonly addr: ReplicaAddress,
    readonly dir: string,
    readonly logFile: string,
  ) {}

  get alive(): boolean {
    return this.child !== undefined && this.exit === undefined
  }

  async status(): Promise<ReplicaStatus | undefined> {
    if (!this.alive) return undefined
    try {
      return JSON.parse(await httpGet(this.addr.metricsPort, '/status')) as ReplicaStatus
    } catch {
      return undefined
    }
  }

  async scrape(): Promise<MetricMap | undefined> {
    if (!this.alive) return this.lastMetrics
    try {
      this.lastMetrics = parsePrometheus(await httpGet(this.addr.metricsPort, '/metrics'))
    } catch {}
    return this.lastMetrics
  }

  logTail(lines = 15): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
    } catch {
      return ''
    }
  }
}

export interface ClusterOptions {
  /** Voter ids with a VM; the first two start the cluster, the rest are spares. */
  readonly vmPages: number
  readonly sync?: Partial<SyncTuning>
  /** Replica setting compactAfterEntries (default: the replica's). */
  readonly compactAfterEntries?: number
  /** Replica setting electionTicks (default: the replica's, 30 ticks of 10 ms). */
  readonly electionTicks?: number
  /**
   * Route every replica-to-replica connection (consensus and sync) through a relay, so that
   * isolate() can partition the network. Client and HTTP ports stay direct.
   */
  readonly relayPeers?: boolean
}

/** 4 replicas: 12 ordered peer pairs, each relayed on at most two ports (consensus, sync). */
const RELAYS_AT_MOST = 4 * 3 * 2

export class DemoCluster {
  readonly root: string
  readonly procs = new Map<number, ReplicaProc>()
  private readonly key = randomBytes(32).toString('hex')
  /** Every replica's token for POST /admin/membership. */
  readonly adminToken = randomBytes(16).toString('hex')
  private addrs: ReplicaAddress[] = []
  /** relayPeers: the relays replica `from` dials its peers through. */
  private readonly relays: PeerRelay[] = []

  private constructor(private readonly o: ClusterOptions) {
    this.root = mkdtempSync(join(tmpdir(), 'plover-demo-'))
  }

  /** Replicas 1, 2 (VM voters), 3 (witness) and 4 (VM voter, spare; not started). */
  static async create(o: ClusterOptions): Promise<DemoCluster> {
    const c = new DemoCluster(o)
    try {
      // One batch for the replicas and the relays: a relay that bound port 0 after the replicas'
      // ports were released could be handed one of them before its replica binds it.
      const ports = await freePorts(4 * 4 + (o.relayPeers ? RELAYS_AT_MOST : 0))
      const p = (i: number) => ports[i]
      c.addrs = [1, 2, 3, 4].map((id, i) => {
        const base = i * 4
        return id === 3
          ? { id, role: 'witness', host: '127.0.0.1', consensusPort: p(base), metricsPort: p(base + 3) }
          : {
              id,
              role: 'voter',
              host: '127.0.0.1',
              consensusPort: p(base),
              clientPort: p(base + 1),
              syncPort: p(base + 2),
              metricsPort: p(base + 3),
            }
      })
      if (o.relayPeers) await c.openRelays(ports.slice(4 * 4))
      for (const a of c.addrs) {
        c.procs.set(
          a.id,
          new ReplicaProc(a, join(c.root, `replica-${a.id}`), join(c.root, `replica-${a.id}.log`)),
        )
      }
    } catch (err) {
      await c.closeRelays()
      c.removeRoot()
      throw err
    }
    return c
  }

  private async openRelays(ports: number[]): Promise<void> {
    for (const from of this.addrs)
      for (const to of this.addrs) {
        if (from.id === to.id) continue
        for (const port of [to.consensusPort, to.syncPort]) {
          if (port === undefined) continue
          const r = new PeerRelay(from.id, to.id, { host: to.host, port })
          this.relays.push(r)
          await r.listen(ports.shift())
        }
      }
  }

  private async closeRelays(): Promise<void> {
    await Promise.all(this.relays.splice(0).map((r) => r.close()))
  }

  /** The membership as replica `id` sees it: its peers' consensus and sync ports are relays. */
  private replicasSeenBy(id: number): ReplicaAddress[] {
    if (this.relays.length === 0) return this.addrs
    const via = (to: ReplicaAddress, port: number | undefined) =>
      port === undefined
        ? undefined
        : this.relays.find((r) => r.from === id && r.to === to.id && r.targetPort === port)!.port
    return this.addrs.map((a) => {
      if (a.id === id) return a
      const syncPort = via(a, a.syncPort)
      return {
        ...a,
        host: '127.0.0.1',
        consensusPort: via(a, a.consensusPort)!,
        ...(syncPort === undefined ? {} : { syncPort }),
      }
    })
  }

  /**
   * A network partition around replica `id` (relayPeers only): nothing flows between it and any
   * peer, in either direction, until heal(). It keeps running, and clients still reach it.
   */
  isolate(id: number): void {
    this.cutWhere('isolate()', (r) => r.from === id || r.to === id)
  }

  /** A partition of one link only: replicas `a` and `b` cannot reach each other (relayPeers only). */
  cutBetween(a: number, b: number): void {
    this.cutWhere('cutBetween()', (r) => (r.from === a && r.to === b) || (r.from === b && r.to === a))
  }

  private cutWhere(what: string, cut: (r: PeerRelay) => boolean): void {
    if (this.relays.length === 0) throw new Error(`${what} needs a cluster created with relayPeers`)
    for (const r of this.relays) if (cut(r)) r.cut()
  }

  /** Ends every partition: held bytes and closes flow, parked connections are made. */
  heal(): void {
    for (const r of this.relays) r.heal()
  }

  get clientEndpoints(): string[] {
    return this.addrs.filter((a) => a.clientPort).map((a) => `${a.host}:${a.clientPort}`)
  }

  /** Writes the replica's config and starts its process. */
  start(id: number, bootstrap: readonly { id: number; role: MemberKind }[]): ReplicaProc {
    const proc = this.procs.get(id)!
    const cfgFile = join(this.root, `replica-${id}.json`)
    writeFileSync(
      cfgFile,
      JSON.stringify(
        {
          id,
          dataDir: proc.dir,
          clusterKey: this.key,
          adminToken: this.adminToken,
          replicas: this.replicasSeenBy(id),
          bootstrap,
          vmPages: this.o.vmPages,
          ...(this.o.sync ? { sync: this.o.sync } : {}),
          ...(this.o.compactAfterEntries ? { compactAfterEntries: this.o.compactAfterEntries } : {}),
          ...(this.o.electionTicks ? { electionTicks: this.o.electionTicks } : {}),
        },
        null,
        2,
      ),
    )
    const out = openSync(proc.logFile, 'a')
    // IPC channel: the replica exits by itself if the demo dies without cleaning up.
    const child = spawn(process.execPath, ['--import', 'tsx', REPLICA_MAIN, '--config', cfgFile], {
      cwd: EXAMPLE_DIR,
      stdio: ['ignore', out, out, 'ipc'],
    })
    if (proc.lastMetrics) proc.earlierRuns.push(proc.lastMetrics)
    proc.lastMetrics = undefined
    proc.child = child
    proc.exit = undefined
    child.on('exit', (code, signal) => {
      proc.exit = { code, signal }
    })
    child.on('error', () => {})
    return proc
  }

  /** The failure the demo is about: no shutdown, no goodbye. */
  async sigkill(id: number): Promise<void> {
    const proc = this.procs.get(id)!
    await proc.scrape()
    const child = proc.child
    if (!child || !proc.alive) return
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve())
      child.kill('SIGKILL')
    })
  }

  /**
   * A hang without a crash (a stalled host, or a partition seen from the others): the process
   * keeps its sockets open but answers nothing until thaw().
   */
  freeze(id: number): void {
    const proc = this.procs.get(id)!
    if (proc.alive) proc.child!.kill('SIGSTOP')
  }

  thaw(id: number): void {
    const proc = this.procs.get(id)!
    if (proc.alive) proc.child!.kill('SIGCONT')
  }

  /** Starts replicas 1, 2 (VM voters) and 3 (witness); resolves once a primary is protected. */
  async startTrio(timeoutMs = 30_000): Promise<ReplicaStatus> {
    for (const b of TRIO) this.start(b.id, TRIO)
    return until('a primary elected and its backup fully synced', timeoutMs, async () => {
      for (const p of this.procs.values())
        if (p.exit) throw new Error(`replica ${p.addr.id} exited:\n${p.logTail()}`)
      const l = await this.leader()
      return l?.vm?.protected && l.vm.hasBackup ? l : undefined
    })
  }

  async leader(): Promise<ReplicaStatus | undefined> {
    for (const p of this.procs.values()) {
      const s = await p.status()
      if (s?.role === 'leader') return s
    }
    return undefined
  }

  /**
   * SIGTERM every live replica (clean shutdown), SIGKILL after a grace period. The leader goes
   * first: it hands primacy to its backup while that one still runs, instead of waiting for it.
   */
  async stopAll(graceMs = 5000): Promise<void> {
    const leader = await this.leader()
    if (leader) await this.sigterm(leader.id, graceMs)
    const live = [...this.procs.values()].filter((p) => p.alive)
    await Promise.all(live.map((p) => this.sigterm(p.addr.id, graceMs)))
  }

  /** A planned stop of replica `id`: SIGTERM, SIGKILL after `graceMs`; resolves with its exit. */
  async sigterm(id: number, graceMs = 5000): Promise<ReplicaProc['exit']> {
    const proc = this.procs.get(id)!
    const child = proc.child
    if (!child || !proc.alive) return proc.exit
    await proc.scrape()
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs)
      child.once('exit', () => {
        clearTimeout(t)
        resolve()
      })
      // A frozen replica would take SIGTERM only once thawed.
      child.kill('SIGCONT')
      child.kill('SIGTERM')
    })
    return proc.exit
  }

  /** Interrupted (Ctrl-C): SIGTERM, wait for the exits (2 s at most), SIGKILL the rest, delete the temp root. */
  async abort(): Promise<void> {
    const live = [...this.procs.values()].filter((p) => p.alive)
    for (const p of live) {
      p.child!.kill('SIGCONT')
      p.child!.kill('SIGTERM')
    }
    await Promise.race([
      Promise.all(live.map((p) => new Promise((r) => p.child!.once('exit', r)))),
      new Promise((r) => setTimeout(r, 2000)),
    ])
    for (const p of live) p.child!.kill('SIGKILL')
    await this.closeRelays()
    this.removeRoot()
  }

  private removeRoot(): void {
    rmSync(this.root, { recursive: true, force: true, maxRetries: 5 })
  }

  /** Stops every replica and deletes the temp root (kept if PLOVER_DEMO_KEEP=1, for debugging). */
  async cleanup(): Promise<void> {
    await this.stopAll()
    await this.closeRelays()
    if (process.env.PLOVER_DEMO_KEEP === '1') process.stdout.write(`PLOVER_DEMO_KEEP=1: kept ${this.root}\n`)
    else this.removeRoot()
  }
}
