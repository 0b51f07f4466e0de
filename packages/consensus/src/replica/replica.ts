import { EventEmitter } from 'eventemitter3'
import { RaftCore, type Ready, type Role } from '../core/raft.js'
import {
  type ConfChange,
  type Entry,
  type EntryType,
  type HardState,
  type Membership,
  type Message,
  MessageType,
  type NodeId,
  type Snapshot,
} from '../core/types.js'
import { type PeerAddress, TcpTransport, type TransportOptions } from '../transport/transport.js'
import { type Recovered, Wal, type WalOptions } from '../wal/wal.js'
import { LeadershipLostError, ReplicaStoppedError } from './errors.js'

// The driver: one RaftCore + one Wal + one TcpTransport on real timers. Its loop is the etcd
// order — ready() → persist (one group-committed fdatasync) → send → apply → advance() — with
// etcd's one exception: a leader sends its appends before its own fsync (Raft thesis §10.2.1);
// the core only counts the leader's own entries toward commit once advance() says they are
// durable, so a commit still means "durable on a quorum".

export interface ReplicaOptions {
  readonly id: NodeId
  /** WAL + snapshot directory of this replica. */
  readonly dir: string
  readonly listen: PeerAddress
  /** Addresses of the other members (and of members that may be added later). */
  readonly peers: ReadonlyMap<NodeId, PeerAddress>
  /** Membership at bootstrap; ignored once a snapshot exists (the log's ConfChanges apply on top). */
  readonly membership: Membership
  readonly clusterKey: Uint8Array
  /** Default 10 ms. */
  readonly tickMs?: number
  /** Default 10. */
  readonly electionTicks?: number
  /** Default 1. */
  readonly heartbeatTicks?: number
  readonly preVote?: boolean
  readonly checkQuorum?: boolean
  readonly maxInflightMsgs?: number
  readonly maxEntriesPerMsg?: number
  readonly maxBytesPerMsg?: number
  /** Leader: proposals are refused (ProposalDroppedError) beyond this many uncommitted bytes. */
  readonly maxUncommittedBytes?: number
  readonly wal?: WalOptions
  readonly transport?: Partial<Omit<TransportOptions, 'id' | 'listen' | 'peers' | 'clusterKey'>>
  readonly random?: () => number
}

export interface ReplicaEvents {
  /** A new leader is known (0 = none). */
  leader: (leader: NodeId, term: number) => void
  role: (role: Role) => void
  /** Commit index advanced to `index` (entries up to it are durable on a quorum). */
  commit: (index: number) => void
  /** A committed entry, in log order, exactly once per process lifetime (replayed after restart). */
  apply: (entry: Entry) => void
  /** A snapshot from the leader replaced the state: the app must load it before later `apply`s. */
  snapshot: (snapshot: Snapshot) => void
  /** Fatal (storage failure, core bug): the replica has stopped. */
  error: (err: Error) => void
  /** A peer connection ended, with why (auth failure, malformed frame, peer down …): log it. */
  disconnected: (info: { readonly peer?: NodeId; readonly remote: string; readonly reason: string }) => void
}

interface Pending {
  readonly term: number
  readonly resolve: (index: number) => void
  readonly reject: (err: Error) => void
}

const LEADER_EARLY_SEND = new Set([
  MessageType.Append,
  MessageType.Heartbeat,
  MessageType.Snapshot,
  MessageType.TimeoutNow,
])

export class Replica extends EventEmitter<ReplicaEvents> {
  private readonly pending = new Map<number, Pending>()
  private timer: NodeJS.Timeout | undefined
  private scheduled = false
  private running = false
  private stopped: Error | undefined
  private loopDone: Promise<void> = Promise.resolve()
  private knownMembership: Membership | undefined
  private lastRole: Role
  private lastLeader: NodeId = 0
  private persistedHard: HardState
  private recoveredSnapshot: Snapshot | undefined

  private constructor(
    private readonly opts: ReplicaOptions,
    private readonly core: RaftCore,
    private readonly wal: Wal,
    private readonly transport: TcpTransport,
  ) {
    super()
    this.lastRole = core.role
    this.persistedHard = wal.recovered.hardState
    this.recoveredSnapshot = wal.recovered.snapshot
  }

  /** Recover from `dir` (hard state + snapshot + entries), start listening and ticking. */
  static async open(opts: ReplicaOptions): Promise<Replica> {
    const wal = await Wal.open(opts.dir, opts.wal)
    const r = wal.recovered
    let core: RaftCore
    try {
      core = newCore(opts, r)
    } catch (e) {
      await wal.close()
      throw e
    }
    const transport = new TcpTransport({
      ...opts.transport,
      id: opts.id,
      listen: opts.listen,
      peers: new Map(),
      clusterKey: opts.clusterKey,
    })
    const replica = new Replica(opts, core, wal, transport)
    replica.syncPeers()
    transport.on('message', (m) => replica.onMessage(m))
    transport.on('disconnected', (info) => replica.emit('disconnected', info))
    try {
      await transport.start()
    } catch (e) {
      await wal.close()
      await transport.close()
      throw e
    }
    replica.timer = setInterval(() => replica.onTick(), opts.tickMs ?? 10)
    replica.schedule()
    return replica
  }

  get id(): NodeId {
    return this.opts.id
  }
  get role(): Role {
    return this.core.role
  }
  get leader(): NodeId {
    return this.core.leader
  }
  get term(): number {
    return this.core.term
  }
  get commitIndex(): number {
    return this.core.commitIndex
  }
  get appliedIndex(): number {
    return this.core.appliedIndex
  }
  /** First index still in the log (1 until a snapshot covers a prefix). */
  get firstIndex(): number {
    return this.core.firstIndex
  }
  get membership(): Membership {
    return this.core.membership
  }
  get listenPort(): number | undefined {
    return this.transport.port
  }
  /** What recovery found on disk at open() (e.g. a torn tail it cut off). */
  get recovery(): Recovered {
    return this.wal.recovered
  }
  status() {
    return this.core.status()
  }
  peerStats(id: NodeId) {
    return this.transport.stats(id)
  }

  /**
   * Append an entry. Resolves with its index once it is COMMITTED: durable (fdatasync'd) on a
   * quorum including this leader. Rejects with NotLeaderError (with `leader` hint) when this
   * replica is not the leader, LeadershipLostError when it stops being leader first.
   */
  propose(type: EntryType, data: Uint8Array): Promise<number> {
    return this.track(() => this.core.propose(type, data))
  }

  /** One-server-at-a-time membership change; resolves when the change entry commits. */
  proposeConfChange(cc: ConfChange): Promise<number> {
    return this.track(() => this.core.proposeConfChange(cc))
  }

  /** Ask `to` (an up-to-date voter) to take over; watch the `leader` event for the outcome. */
  transferLeadership(to: NodeId): void {
    this.core.transferLeadership(to)
    this.schedule()
  }

  /** Start an election now (tests, operator action). */
  campaign(): void {
    this.core.campaign()
    this.schedule()
  }

  /**
   * The app's state up to `index` (already applied) is captured by `data`: store it as the
   * snapshot and drop covered log segments.
   */
  async compact(index: number, data: Uint8Array): Promise<void> {
    if (this.stopped) throw this.stopped
    const snap = this.core.compact(index, data)
    await this.wal.compact(snap).catch((e: unknown) => {
      this.fatal(e as Error)
      throw e
    })
  }

  /** Stop timers and networking, finish the in-flight persist, close the WAL. */
  async close(): Promise<void> {
    if (!this.stopped) this.stopped = new ReplicaStoppedError('replica closed')
    await this.shutdown(this.stopped)
  }

  private track(append: () => number): Promise<number> {
    if (this.stopped) return Promise.reject(this.stopped)
    let index: number
    try {
      index = append()
    } catch (e) {
      return Promise.reject(e)
    }
    const term = this.core.term
    this.schedule()
    return new Promise((resolve, reject) => this.pending.set(index, { term, resolve, reject }))
  }

  private onTick(): void {
    if (this.stopped) return
    this.core.tick()
    this.schedule()
  }

  private onMessage(m: Message): void {
    if (this.stopped) return
    try {
      this.core.step(m)
    } catch (e) {
      this.fatal(e as Error)
      return
    }
    this.schedule()
  }

  private schedule(): void {
    if (this.scheduled || this.stopped) return
    this.scheduled = true
    // setImmediate (not a microtask): let every message already read from the sockets be
    // stepped first, so one Ready (one fsync) covers them all.
    setImmediate(() => {
      this.scheduled = false
      if (!this.running) this.loopDone = this.loop()
    })
  }

  private async loop(): Promise<void> {
    this.running = true
    try {
      // First run after open(): the app rebuilds its state from the recovered snapshot, then
      // from committed entries replayed through `apply` (listeners are attached by now).
      const recovered = this.recoveredSnapshot
      this.recoveredSnapshot = undefined
      if (recovered) this.emit('snapshot', recovered)
      while (!this.stopped && this.core.hasReady()) {
        const rd = this.core.ready()
        await this.handle(rd)
        if (this.stopped) return
        this.core.advance(rd)
      }
    } catch (e) {
      this.fatal(e as Error)
    } finally {
      this.running = false
    }
  }

  private async handle(rd: Ready): Promise<void> {
    const isLeader = this.core.role === 'leader'
    let later: readonly Message[] = rd.messages
    if (isLeader) {
      later = []
      for (const m of rd.messages) {
        if (LEADER_EARLY_SEND.has(m.type)) this.transport.send(m)
        else (later as Message[]).push(m)
      }
    }
    if (rd.softState) this.onSoftState()
    // Committed entries that are already durable HERE (below this Ready's new entries) are
    // applied and acknowledged before this Ready's fsync: on the leader that is every commit,
    // and waiting would add a whole fsync to each commit's latency. The rest (a follower's
    // entries arriving already committed, or anything after a snapshot) wait for the fsync.
    const firstNew = rd.snapshot ? 0 : (rd.entries[0]?.index ?? Number.POSITIVE_INFINITY)
    let split = 0
    while (split < rd.committed.length && rd.committed[split].index < firstNew) split++
    this.applyCommitted(rd.committed.slice(0, split))
    if (rd.entries.length > 0 || rd.snapshot || (rd.hardState && this.mustSync(rd.hardState))) {
      await this.wal.save({ hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot })
      if (this.stopped) return
    } else if (rd.hardState) {
      // Only the commit index moved (etcd's MustSync rule): it can be relearned from the
      // quorum, so it is written without an fsync of its own (the next synced batch covers it).
      this.wal.save({ hardState: rd.hardState, sync: false }).catch((e: Error) => this.fatal(e))
    }
    if (rd.hardState) this.persistedHard = rd.hardState
    if (rd.snapshot) this.emit('snapshot', rd.snapshot)
    this.applyCommitted(rd.committed.slice(split))
    // Votes, acks and everything else leave only once what they promise is on disk.
    for (const m of later) this.transport.send(m)
    if (this.core.membership !== this.knownMembership) this.syncPeers()
  }

  private applyCommitted(committed: readonly Entry[]): void {
    let last = 0
    for (const e of committed) {
      this.emit('apply', e)
      last = e.index
      const p = this.pending.get(e.index)
      if (p) {
        this.pending.delete(e.index)
        if (p.term === e.term) p.resolve(e.index)
        else p.reject(new LeadershipLostError(e.index, p.term, this.core.leader, true))
      }
    }
    if (last > 0) this.emit('commit', last)
  }

  private mustSync(hs: HardState): boolean {
    const p = this.persistedHard
    return hs.term !== p.term || hs.vote !== p.vote
  }

  private onSoftState(): void {
    const role = this.core.role
    const leader = this.core.leader
    if (role !== this.lastRole) {
      const wasLeader = this.lastRole === 'leader'
      this.lastRole = role
      if (wasLeader) this.failPending((i, p) => new LeadershipLostError(i, p.term, leader, false))
      this.emit('role', role)
    }
    if (leader !== this.lastLeader) {
      this.lastLeader = leader
      this.emit('leader', leader, this.core.term)
    }
  }

  /** Keep the transport's peer set equal to the current membership. */
  private syncPeers(): void {
    const m = this.core.membership
    this.knownMembership = m
    const want = new Set(m.members.map((x) => x.id))
    for (const id of want) {
      if (id === this.opts.id) continue
      const addr = this.opts.peers.get(id)
      if (addr) this.transport.addPeer(id, addr)
    }
    for (const id of this.opts.peers.keys()) if (!want.has(id)) this.transport.removePeer(id)
  }

  private failPending(err: (index: number, p: Pending) => Error): void {
    for (const [i, p] of this.pending) p.reject(err(i, p))
    this.pending.clear()
  }

  private fatal(err: Error): void {
    if (this.stopped) return
    this.stopped = err
    void this.shutdown(err)
    this.emit('error', err)
  }

  private async shutdown(err: Error): Promise<void> {
    clearInterval(this.timer)
    this.timer = undefined
    this.failPending(() => err)
    await this.transport.close()
    await this.loopDone.catch(() => {})
    await this.wal.close()
  }
}

function newCore(opts: ReplicaOptions, r: Recovered): RaftCore {
  return new RaftCore(
    {
      id: opts.id,
      electionTicks: opts.electionTicks ?? 10,
      heartbeatTicks: opts.heartbeatTicks ?? 1,
      random: opts.random ?? Math.random,
      preVote: opts.preVote,
      checkQuorum: opts.checkQuorum,
      maxInflightMsgs: opts.maxInflightMsgs,
      maxEntriesPerMsg: opts.maxEntriesPerMsg,
      maxBytesPerMsg: opts.maxBytesPerMsg,
      maxUncommittedBytes: opts.maxUncommittedBytes,
    },
    { hardState: r.hardState, snapshot: r.snapshot, entries: r.entries, membership: opts.membership },
  )
}
