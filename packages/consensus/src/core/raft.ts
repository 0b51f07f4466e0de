// The pure consensus core (etcd-io/raft style): a deterministic state machine driven by tick(),
// step() and the local proposal API. It performs no I/O: everything that must be persisted,
// sent or applied is handed out by ready() and acknowledged by advance().
import {
  InvalidRequestError,
  NotLeaderError,
  ProposalDroppedError,
  ProtocolViolationError,
} from './errors.js'
import { RaftLog } from './log.js'
import {
  applyConfChange,
  decodeConfChange,
  decodeConfChangeResult,
  encodeConfChange,
  memberIds,
  quorumSize,
  roleOf,
  voterIds,
} from './membership.js'
import { Progress } from './progress.js'
import {
  type ConfChange,
  ConfChangeType,
  type Entry,
  EntryType,
  type HardState,
  MemberRole,
  type Membership,
  type Message,
  MessageType,
  type NodeId,
  type Snapshot,
} from './types.js'

export type Role = 'follower' | 'candidate' | 'precandidate' | 'leader' | 'witness'

export interface RaftConfig {
  id: NodeId
  /** Ticks without hearing from a leader before campaigning (randomized in [n, 2n)). */
  electionTicks: number
  heartbeatTicks: number
  /** Injected randomness in [0, 1): the core has none of its own (determinism). */
  random: () => number
  /** Pre-vote (Raft thesis §9.6): don't disrupt a healthy leader. Default true. */
  preVote?: boolean
  /** Leader steps down without quorum contact; followers honour a leader lease. Default true. */
  checkQuorum?: boolean
  /** Append messages in flight per follower in Replicate state. Default 256. */
  maxInflightMsgs?: number
  /** Entries per Append. Default 1024. */
  maxEntriesPerMsg?: number
  /** Bytes of entry data per Append (at least one entry is always sent). Default 1 MiB. */
  maxBytesPerMsg?: number
  /**
   * Leader: most bytes of entry data proposed in its term and not yet committed (etcd's
   * MaxUncommittedEntriesSize). A proposal beyond it is refused with ProposalDroppedError, so a
   * leader that cannot commit (cut off, slow disks) does not grow its log without limit; one
   * entry is always accepted when nothing is uncommitted. Default 64 MiB; Infinity = no limit.
   */
  maxUncommittedBytes?: number
}

export interface RestoredState {
  hardState: HardState
  snapshot?: Snapshot
  /** Durable entries (those at or below the snapshot index are ignored). */
  entries: readonly Entry[]
  /** Initial membership, used when there is no snapshot; ConfChange entries apply on top. */
  membership: Membership
  /** Index the app's state already reflects (default: the snapshot index). */
  applied?: number
}

export interface SoftState {
  /** 0 = none known. */
  leader: NodeId
  role: Role
}

export interface Ready {
  softState?: SoftState
  hardState?: HardState
  /** Persist and install before `entries`; the app's state becomes this snapshot's data. */
  snapshot?: Snapshot
  /** Persist; entries[0].index may overwrite (truncate) a suffix of the durable log. */
  entries: readonly Entry[]
  /** Send only AFTER hardState, entries and snapshot are durable. */
  messages: readonly Message[]
  /** Apply in order (after persisting this Ready). */
  committed: readonly Entry[]
}

export interface FollowerStatus {
  id: NodeId
  match: number
  next: number
  state: string
  inflight: number
  recentActive: boolean
}

export interface Status {
  id: NodeId
  role: Role
  leader: NodeId
  term: number
  vote: NodeId
  commit: number
  applied: number
  firstIndex: number
  lastIndex: number
  membership: Membership
  leadTransferee: NodeId
  /** Peer messages dropped because they would have broken an invariant (should stay 0). */
  violations: number
  /** Leader only. */
  progress: FollowerStatus[]
}

type State = 'follower' | 'candidate' | 'precandidate' | 'leader'

const EMPTY = new Uint8Array(0)

export class RaftCore {
  readonly id: NodeId
  private readonly electionTicks: number
  private readonly heartbeatTicks: number
  private readonly random: () => number
  private readonly preVote: boolean
  private readonly checkQuorum: boolean
  private readonly maxInflight: number
  private readonly maxEntries: number
  private readonly maxBytes: number
  private readonly maxUncommittedBytes: number

  private readonly log: RaftLog
  private baseMembership: Membership
  private membershipCache: { version: number; base: Membership; value: Membership } | undefined

  private _term: number
  private vote: NodeId
  private _leader: NodeId = 0
  private state: State = 'follower'
  private electionElapsed = 0
  private heartbeatElapsed = 0
  private randomizedElectionTimeout = 0
  private votes = new Map<NodeId, boolean>()
  private prs = new Map<NodeId, Progress>()
  private leadTransferee: NodeId = 0
  /** Leader: index of the latest ConfChange entry; a new one waits until it commits. */
  private pendingConfIndex = 0
  /** Leader: entries were proposed since the last broadcast (batched into the next Ready). */
  private needBroadcast = false
  /** Leader: data bytes of this term's entries above the commit index (maxUncommittedBytes). */
  private uncommittedBytes = 0
  private msgs: Message[] = []
  private prevSoft: SoftState
  private prevHard: HardState
  private violations = 0

  constructor(config: RaftConfig, restored: RestoredState) {
    if (!Number.isInteger(config.id) || config.id <= 0)
      throw new InvalidRequestError('id must be a positive integer')
    if (config.heartbeatTicks < 1 || config.electionTicks <= config.heartbeatTicks) {
      throw new InvalidRequestError('need 1 <= heartbeatTicks < electionTicks')
    }
    this.id = config.id
    this.electionTicks = config.electionTicks
    this.heartbeatTicks = config.heartbeatTicks
    this.random = config.random
    this.preVote = config.preVote ?? true
    this.checkQuorum = config.checkQuorum ?? true
    this.maxInflight = config.maxInflightMsgs ?? 256
    this.maxEntries = config.maxEntriesPerMsg ?? 1024
    this.maxBytes = config.maxBytesPerMsg ?? 1 << 20
    this.maxUncommittedBytes = config.maxUncommittedBytes ?? 64 * 1024 * 1024
    if (!(this.maxUncommittedBytes > 0)) throw new InvalidRequestError('maxUncommittedBytes must be positive')
    const hs = restored.hardState
    this.log = new RaftLog(restored.snapshot, restored.entries, hs.commit, restored.applied ?? 0)
    this.baseMembership = restored.snapshot?.meta.membership ?? restored.membership
    this._term = hs.term
    this.vote = hs.vote
    this.resetElectionTimeout()
    this.prevSoft = this.softState()
    this.prevHard = this.hardState()
  }

  // ---- read-only state ---------------------------------------------------------------------

  get role(): Role {
    if (this.state === 'follower' && roleOf(this.membership, this.id) === MemberRole.Witness) return 'witness'
    return this.state
  }

  get leader(): NodeId {
    return this._leader
  }

  get term(): number {
    return this._term
  }

  get commitIndex(): number {
    return this.log.committed
  }

  get lastIndex(): number {
    return this.log.lastIndex()
  }

  get appliedIndex(): number {
    return this.log.applied
  }

  /** First index still in the log (1 until a snapshot covers a prefix). */
  get firstIndex(): number {
    return this.log.firstIndex()
  }

  /** Effective membership: the latest ConfChange in the log wins, committed or not (Raft §4.1). */
  get membership(): Membership {
    const c = this.membershipCache
    if (c && c.version === this.log.confVersion && c.base === this.baseMembership) return c.value
    const value = this.membershipAt(this.log.lastIndex())
    this.membershipCache = { version: this.log.confVersion, base: this.baseMembership, value }
    return value
  }

  /** The latest snapshot (from compact() or from the leader), if any. */
  get snapshot(): Snapshot | undefined {
    return this.log.snapshot
  }

  /** Term of the entry at index (the snapshot's index included), or undefined if unknown. */
  termAt(index: number): number | undefined {
    return this.log.term(index)
  }

  /** Entries in [lo, hi) still in memory (for inspection and the simulation's checkers). */
  entries(lo: number, hi: number): Entry[] {
    return this.log.slice(lo, hi)
  }

  status(): Status {
    const progress: FollowerStatus[] = []
    if (this.state === 'leader') {
      for (const [id, pr] of [...this.prs].sort((a, b) => a[0] - b[0])) {
        progress.push({
          id,
          match: pr.match,
          next: pr.next,
          state: pr.state,
          inflight: pr.inflightCount(),
          recentActive: pr.recentActive,
        })
      }
    }
    return {
      id: this.id,
      role: this.role,
      leader: this._leader,
      term: this._term,
      vote: this.vote,
      commit: this.log.committed,
      applied: this.log.applied,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      membership: this.membership,
      leadTransferee: this.leadTransferee,
      violations: this.violations,
      progress,
    }
  }

  // ---- local API -----------------------------------------------------------------------------

  tick(): void {
    if (this.state === 'leader') this.tickLeader()
    else this.tickElection()
  }

  /** Start an election now (as if the election timeout fired). No-op for a leader or non-voter. */
  campaign(): void {
    if (this.state === 'leader' || !this.promotable()) return
    this.startCampaign(this.preVote ? 'pre' : 'real')
  }

  propose(type: EntryType, data: Uint8Array): number {
    this.checkCanPropose()
    if (type === EntryType.ConfChange)
      throw new InvalidRequestError('use proposeConfChange for membership changes')
    if (this.uncommittedBytes > 0 && this.uncommittedBytes + data.length > this.maxUncommittedBytes) {
      throw new ProposalDroppedError(
        `${this.uncommittedBytes} bytes proposed and not yet committed (maxUncommittedBytes ${this.maxUncommittedBytes})`,
      )
    }
    return this.appendEntry(type, data)
  }

  /**
   * One server at a time: the change takes effect as soon as it is appended (on every replica),
   * and a second change is refused until the first commits.
   */
  proposeConfChange(cc: ConfChange): number {
    this.checkCanPropose()
    if (this.pendingConfIndex > this.log.committed) {
      throw new ProposalDroppedError(`membership change at index ${this.pendingConfIndex} not committed yet`)
    }
    // Ongaro's single-server fix: a new leader first commits an entry of its own term.
    if (this.log.term(this.log.committed) !== this._term) {
      throw new ProposalDroppedError('leader has not committed an entry in its term yet')
    }
    const m = this.membership
    const current = roleOf(m, cc.id)
    if (cc.type === ConfChangeType.AddMember) {
      if (current === cc.role) throw new InvalidRequestError(`${cc.id} is already a member with that role`)
      if (cc.id === this.id && cc.role !== MemberRole.Voter) {
        throw new InvalidRequestError('transfer leadership before demoting the leader')
      }
    } else {
      if (current === undefined) throw new InvalidRequestError(`${cc.id} is not a member`)
      if (cc.id === this.id) throw new InvalidRequestError('transfer leadership before removing the leader')
    }
    const next = applyConfChange(m, cc)
    if (!next.members.some((x) => x.role === MemberRole.Voter)) {
      throw new InvalidRequestError('membership must keep at least one voter that can lead')
    }
    // Strict reconfiguration check (as etcd's server does): never enter a membership whose
    // quorum cannot be formed by voters we know are alive and replicating, or the group can
    // deadlock (e.g. removing a voter while its replacement has not caught up yet).
    const nextVoters = voterIds(next)
    const healthy = nextVoters.filter((id) => {
      if (id === this.id) return true
      const pr = this.prs.get(id)
      return pr?.recentActive === true && pr.state === 'replicate'
    })
    if (healthy.length < quorumSize(nextVoters.length)) {
      throw new ProposalDroppedError(
        `only ${healthy.length} of ${nextVoters.length} voters would be active and caught up (need a quorum)`,
      )
    }
    const index = this.appendEntry(EntryType.ConfChange, encodeConfChange(cc, next))
    this.pendingConfIndex = index
    this.syncProgress()
    // The quorum itself may have shrunk.
    this.maybeCommit()
    return index
  }

  transferLeadership(to: NodeId): void {
    if (this.state !== 'leader') throw new NotLeaderError(this._leader)
    if (to === this.id) return
    if (roleOf(this.membership, to) !== MemberRole.Voter) {
      throw new InvalidRequestError(`${to} is not a voter that may lead`)
    }
    if (this.leadTransferee === to) return
    this.leadTransferee = to
    // The transfer is abandoned after one election timeout (see tickLeader).
    this.electionElapsed = 0
    const pr = this.prs.get(to)
    if (pr && pr.match === this.log.lastIndex()) this.sendTimeoutNow(to)
    else this.maybeSendAppend(to, true)
  }

  /**
   * The app's state reflects everything up to `index` and `data` captures it: remember that as
   * the snapshot and drop the log before it. Returns the snapshot so the app can persist it.
   */
  compact(index: number, data: Uint8Array): Snapshot {
    if (index <= this.log.offset) throw new InvalidRequestError(`already compacted up to ${this.log.offset}`)
    if (index > this.log.applied)
      throw new InvalidRequestError(`cannot compact beyond applied ${this.log.applied}`)
    const term = this.log.term(index)
    if (term === undefined) throw new InvalidRequestError(`no entry at ${index}`)
    const snap: Snapshot = { meta: { index, term, membership: this.membershipAt(index) }, data }
    this.baseMembership = snap.meta.membership
    this.log.compact(snap)
    return snap
  }

  hasReady(): boolean {
    if (this.needBroadcast && this.state === 'leader') return true
    return (
      this.msgs.length > 0 ||
      this.log.pendingSnapshot !== undefined ||
      this.log.stabled < this.log.lastIndex() ||
      this.log.hasNextCommitted() ||
      !sameSoft(this.softState(), this.prevSoft) ||
      !sameHard(this.hardState(), this.prevHard)
    )
  }

  ready(): Ready {
    if (this.needBroadcast && this.state === 'leader') this.bcastAppend(false)
    this.needBroadcast = false
    const soft = this.softState()
    const hard = this.hardState()
    const rd: Ready = {
      entries: this.log.unstableEntries(),
      messages: this.msgs,
      committed: this.log.nextCommitted(),
    }
    if (!sameSoft(soft, this.prevSoft)) rd.softState = soft
    if (!sameHard(hard, this.prevHard)) rd.hardState = hard
    if (this.log.pendingSnapshot) rd.snapshot = this.log.pendingSnapshot
    this.msgs = []
    return rd
  }

  /** The app persisted, sent and applied `rd`. */
  advance(rd: Ready): void {
    if (rd.softState) this.prevSoft = rd.softState
    if (rd.hardState) this.prevHard = rd.hardState
    if (rd.snapshot) {
      if (this.log.pendingSnapshot === rd.snapshot) this.log.pendingSnapshot = undefined
      this.log.applied = Math.max(this.log.applied, rd.snapshot.meta.index)
    }
    const last = rd.entries[rd.entries.length - 1]
    if (last) this.log.stableTo(last.index, last.term)
    const applied = rd.committed[rd.committed.length - 1]
    if (applied) this.log.applied = Math.max(this.log.applied, applied.index)
    // The leader counts itself towards commit only for entries it has made durable.
    if (this.state === 'leader') {
      const self = this.prs.get(this.id)
      if (self?.maybeUpdate(this.log.stabled) && this.maybeCommit()) this.bcastAppend(true)
    }
  }

  // ---- message handling --------------------------------------------------------------------

  step(m: Message): void {
    if (m.from === this.id || m.from === 0 || (m.to !== this.id && m.to !== 0)) return
    try {
      this.stepInner(m)
    } catch (err) {
      if (err instanceof ProtocolViolationError) {
        this.violations++
        return
      }
      throw err
    }
  }

  private stepInner(m: Message): void {
    const t = m.type
    if (m.term > this._term) {
      if (t === MessageType.Vote || t === MessageType.PreVote) {
        // Leader lease: while we hear from a live leader, ignore disruptive campaigns
        // (a removed or partitioned-then-returning server), except an explicit transfer.
        const inLease = this.checkQuorum && this._leader !== 0 && this.electionElapsed < this.electionTicks
        if (inLease && !m.transfer) return
        if (roleOf(this.membership, m.from) !== MemberRole.Voter) return
      }
      if (t === MessageType.PreVote || (t === MessageType.PreVoteResp && !m.reject)) {
        // A pre-vote never changes terms: that is its whole point.
      } else {
        const fromLeader =
          t === MessageType.Append || t === MessageType.Heartbeat || t === MessageType.Snapshot
        this.becomeFollower(m.term, fromLeader ? m.from : 0)
      }
    } else if (m.term < this._term) {
      if ((this.checkQuorum || this.preVote) && (t === MessageType.Append || t === MessageType.Heartbeat)) {
        // A stale leader (e.g. back from a partition) learns our term and steps down.
        this.send({ type: MessageType.AppendResp, to: m.from })
        return
      }
      if (t === MessageType.PreVote) {
        this.send({ type: MessageType.PreVoteResp, to: m.from, reject: true })
        return
      }
      // CatchUp is safe at any term (see handleCatchUp); everything else is stale.
      if (t !== MessageType.CatchUp) return
    }

    switch (t) {
      case MessageType.Vote:
      case MessageType.PreVote:
        this.handleVoteRequest(m)
        return
      case MessageType.CatchUp:
        this.handleCatchUp(m)
        return
    }
    if (this.state === 'leader') this.stepLeader(m)
    else if (this.state === 'follower') this.stepFollower(m)
    else this.stepCandidate(m)
  }

  private handleVoteRequest(m: Message): void {
    const mem = this.membership
    const me = roleOf(mem, this.id)
    if (me !== MemberRole.Voter && me !== MemberRole.Witness) return
    if (roleOf(mem, m.from) !== MemberRole.Voter) return
    const pre = m.type === MessageType.PreVote
    const respType = pre ? MessageType.PreVoteResp : MessageType.VoteResp
    const canVote =
      this.vote === m.from || (this.vote === 0 && this._leader === 0) || (pre && m.term > this._term)
    const upToDate = this.log.isUpToDate(m.logIndex, m.logTerm)
    if (canVote && upToDate) {
      this.send({ type: respType, to: m.from, term: m.term })
      if (!pre) {
        this.electionElapsed = 0
        this.vote = m.from
      }
      return
    }
    this.send({ type: respType, to: m.from, reject: true })
    // Witness catch-up (docs/consensus.md): a witness never leads, so if it holds entries a
    // would-be leader lacks, it hands them over instead of deadlocking the group.
    if (me === MemberRole.Witness && !upToDate) {
      this.sendCatchUp(
        m.from,
        this.log.findConflictByTerm(Math.min(m.logIndex, this.log.lastIndex()), m.logTerm),
      )
    }
  }

  /** Witness side: send everything after `prev` (with our snapshot if prev is compacted). */
  private sendCatchUp(to: NodeId, prev: number): void {
    const last = this.log.lastIndex()
    if (prev < this.log.offset) {
      const snap = this.log.snapshot
      if (!snap) return
      this.send({
        type: MessageType.CatchUp,
        to,
        logIndex: snap.meta.index,
        logTerm: snap.meta.term,
        entries: this.log.slice(snap.meta.index + 1, last + 1),
        commit: this.log.committed,
        snapshot: snap,
      })
      return
    }
    // The whole suffix in one message: the receiver only accepts a batch that is more up to
    // date than its own log (that is what makes catch-up safe), so it cannot be split.
    this.send({
      type: MessageType.CatchUp,
      to,
      logIndex: prev,
      logTerm: this.log.term(prev) ?? 0,
      entries: this.log.slice(prev + 1, last + 1),
      commit: this.log.committed,
    })
  }

  /**
   * Candidate side of witness catch-up. Safety does not depend on the message's age or term:
   * we only accept a batch whose last entry is strictly more up to date than our log, and
   * such a batch can never conflict with an entry committed in our log (docs/consensus.md).
   */
  private handleCatchUp(m: Message): void {
    if (this.state === 'leader' || (this.state === 'follower' && this._leader !== 0)) return
    if (roleOf(this.membership, m.from) !== MemberRole.Witness) return
    if (!this.promotable()) return
    const tail = m.entries[m.entries.length - 1]
    const lastIndex = tail ? tail.index : m.logIndex
    const lastTerm = tail ? tail.term : m.logTerm
    const ourTerm = this.log.lastTerm()
    if (!(lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex > this.log.lastIndex()))) return
    if (m.snapshot) {
      const s = m.snapshot
      if (s.meta.index !== m.logIndex || s.meta.term !== m.logTerm) return
      if (s.meta.index > this.log.committed && !this.log.matchTerm(s.meta.index, s.meta.term)) {
        this.installSnapshot(s)
      }
    }
    // Our committed prefix may be compacted: start right after it (it cannot conflict).
    let prevIndex = m.logIndex
    let prevTerm = m.logTerm
    let ents = m.entries
    const committed = this.log.committed
    if (prevIndex < committed) {
      const k = ents.findIndex((e) => e.index === committed)
      if (k < 0 || ents[k].term !== this.log.term(committed)) return
      prevIndex = committed
      prevTerm = ents[k].term
      ents = ents.slice(k + 1)
    }
    const r = this.log.maybeAppend(prevIndex, prevTerm, m.commit, ents)
    if (r === undefined) {
      const [hint, hintTerm] = this.rejectHint(m)
      this.send({
        type: MessageType.AppendResp,
        to: m.from,
        reject: true,
        logIndex: m.logIndex,
        rejectHint: hint,
        logTerm: hintTerm,
      })
      return
    }
    // Our log now ends where the witness's does: ask again, we should now win its vote.
    this.startCampaign(this.preVote ? 'pre' : 'real')
  }

  private stepLeader(m: Message): void {
    const pr = this.prs.get(m.from)
    if (!pr) return
    switch (m.type) {
      case MessageType.AppendResp: {
        pr.recentActive = true
        if (m.reject) {
          // Where might our logs agree? Use the follower's hint (term-aware, etcd style).
          const hint = m.logTerm > 0 ? this.log.findConflictByTerm(m.rejectHint, m.logTerm) : m.rejectHint
          if (pr.maybeDecrTo(m.logIndex, hint)) {
            if (pr.state === 'replicate') pr.becomeProbe()
            this.maybeSendAppend(m.from, true)
          }
          return
        }
        const wasPaused = pr.isPaused()
        if (pr.maybeUpdate(m.logIndex)) {
          if (pr.state === 'probe') pr.becomeReplicate()
          else if (pr.state === 'snapshot' && pr.match + 1 >= this.log.firstIndex()) {
            pr.becomeProbe()
            pr.becomeReplicate()
          } else if (pr.state === 'replicate') pr.freeUpTo(m.logIndex)
          if (this.maybeCommit()) this.bcastAppend(true)
          else if (wasPaused) this.maybeSendAppend(m.from, true)
          while (this.maybeSendAppend(m.from, false)) {}
          if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from)
        }
        return
      }
      case MessageType.HeartbeatResp:
        pr.recentActive = true
        pr.probeSent = false
        if (pr.state === 'replicate' && pr.inflightFull()) pr.freeFirst()
        // Also repairs a follower whose in-flight Appends were all lost: an empty Append at
        // our last index is rejected and sends it back to probing.
        if (pr.match < this.log.lastIndex()) this.maybeSendAppend(m.from, true)
        return
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case MessageType.Append:
        this.becomeFollower(m.term, m.from)
        this.handleAppend(m)
        return
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from)
        this.handleHeartbeat(m)
        return
      case MessageType.Snapshot:
        this.becomeFollower(m.term, m.from)
        this.handleSnapshot(m)
        return
      case MessageType.PreVoteResp:
      case MessageType.VoteResp: {
        const want = this.state === 'precandidate' ? MessageType.PreVoteResp : MessageType.VoteResp
        if (m.type !== want) return
        const voters = voterIds(this.membership)
        if (!voters.includes(m.from)) return
        this.votes.set(m.from, !m.reject)
        const result = this.tally()
        if (result === 'won') {
          if (this.state === 'precandidate') this.startCampaign('real')
          else this.becomeLeader()
        } else if (result === 'lost') {
          this.becomeFollower(this._term, 0)
        }
        return
      }
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.Append:
        this.electionElapsed = 0
        this._leader = m.from
        this.handleAppend(m)
        return
      case MessageType.Heartbeat:
        this.electionElapsed = 0
        this._leader = m.from
        this.handleHeartbeat(m)
        return
      case MessageType.Snapshot:
        this.electionElapsed = 0
        this._leader = m.from
        this.handleSnapshot(m)
        return
      case MessageType.TimeoutNow:
        // Leadership transfer: campaign at once, skipping pre-vote and leases.
        if (this.promotable()) this.startCampaign('transfer')
        return
      case MessageType.AppendResp:
        // Only a witness ever sends Appends-like messages as a non-leader (CatchUp): a
        // rejection means the candidate's log diverges further back; retry from its hint.
        if (m.reject && roleOf(this.membership, this.id) === MemberRole.Witness) {
          const hint = m.logTerm > 0 ? this.log.findConflictByTerm(m.rejectHint, m.logTerm) : m.rejectHint
          const prev = Math.min(hint, m.logIndex - 1)
          this.sendCatchUp(m.from, prev)
        }
        return
    }
  }

  private handleAppend(m: Message): void {
    if (m.logIndex < this.log.committed) {
      this.send({ type: MessageType.AppendResp, to: m.from, logIndex: this.log.committed })
      return
    }
    const r = this.log.maybeAppend(m.logIndex, m.logTerm, m.commit, m.entries)
    if (r !== undefined) {
      this.send({ type: MessageType.AppendResp, to: m.from, logIndex: r })
      return
    }
    const [hint, hintTerm] = this.rejectHint(m)
    this.send({
      type: MessageType.AppendResp,
      to: m.from,
      reject: true,
      logIndex: m.logIndex,
      rejectHint: hint,
      logTerm: hintTerm,
    })
  }

  /** Where our log may agree with the sender's, given its (logIndex, logTerm) did not match. */
  private rejectHint(m: Message): [number, number] {
    const hint = this.log.findConflictByTerm(Math.min(m.logIndex, this.log.lastIndex()), m.logTerm)
    return [hint, this.log.term(hint) ?? 0]
  }

  private handleHeartbeat(m: Message): void {
    this.log.commitTo(m.commit)
    this.send({ type: MessageType.HeartbeatResp, to: m.from })
  }

  private handleSnapshot(m: Message): void {
    const s = m.snapshot
    if (!s) return
    if (s.meta.index <= this.log.committed) {
      this.send({ type: MessageType.AppendResp, to: m.from, logIndex: this.log.committed })
      return
    }
    if (this.log.matchTerm(s.meta.index, s.meta.term)) {
      // We already have that entry: just fast-forward commit, keep the log.
      this.log.commitTo(s.meta.index)
      this.send({ type: MessageType.AppendResp, to: m.from, logIndex: this.log.committed })
      return
    }
    this.installSnapshot(s)
    this.send({ type: MessageType.AppendResp, to: m.from, logIndex: this.log.lastIndex() })
  }

  private installSnapshot(s: Snapshot): void {
    this.log.restore(s)
    this.baseMembership = s.meta.membership
  }

  // ---- roles -------------------------------------------------------------------------------

  private becomeFollower(term: number, leader: NodeId): void {
    this.reset(term)
    this.state = 'follower'
    this._leader = leader
  }

  private becomePreCandidate(): void {
    // Neither term nor vote change: a failed pre-campaign leaves no trace.
    this.votes = new Map()
    this.state = 'precandidate'
    this._leader = 0
    this.electionElapsed = 0
    this.resetElectionTimeout()
  }

  private becomeCandidate(): void {
    this.reset(this._term + 1)
    this.vote = this.id
    this.state = 'candidate'
  }

  private becomeLeader(): void {
    this.reset(this._term)
    this.state = 'leader'
    this._leader = this.id
    this.syncProgress()
    const confs = this.log.confEntries()
    this.pendingConfIndex = confs.length > 0 ? confs[confs.length - 1].index : 0
    // A no-op of our term lets us commit entries of earlier terms (Raft §5.4.2).
    this.appendEntry(EntryType.Empty, EMPTY)
  }

  private reset(term: number): void {
    if (term !== this._term) {
      this._term = term
      this.vote = 0
    }
    this._leader = 0
    this.electionElapsed = 0
    this.heartbeatElapsed = 0
    this.resetElectionTimeout()
    this.leadTransferee = 0
    this.votes = new Map()
    this.prs = new Map()
    this.needBroadcast = false
    this.uncommittedBytes = 0
  }

  private resetElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTicks + Math.floor(this.random() * this.electionTicks)
  }

  /** Only a Voter (not a witness or learner, not a removed node) may campaign and lead. */
  private promotable(): boolean {
    return roleOf(this.membership, this.id) === MemberRole.Voter && this.log.pendingSnapshot === undefined
  }

  private startCampaign(kind: 'pre' | 'real' | 'transfer'): void {
    const pre = kind === 'pre'
    if (pre) this.becomePreCandidate()
    else this.becomeCandidate()
    const voteTerm = pre ? this._term + 1 : this._term
    this.votes.set(this.id, true)
    const result = this.tally()
    if (result === 'won') {
      if (pre) this.startCampaign('real')
      else this.becomeLeader()
      return
    }
    for (const id of voterIds(this.membership)) {
      if (id === this.id) continue
      this.send({
        type: pre ? MessageType.PreVote : MessageType.Vote,
        to: id,
        term: voteTerm,
        logIndex: this.log.lastIndex(),
        logTerm: this.log.lastTerm(),
        transfer: kind === 'transfer',
      })
    }
  }

  private tally(): 'won' | 'lost' | 'pending' {
    const voters = voterIds(this.membership)
    const q = quorumSize(voters.length)
    let granted = 0
    let rejected = 0
    for (const id of voters) {
      const v = this.votes.get(id)
      if (v === true) granted++
      else if (v === false) rejected++
    }
    if (granted >= q) return 'won'
    if (voters.length - rejected < q) return 'lost'
    return 'pending'
  }

  // ---- leader duties -------------------------------------------------------------------------

  private tickElection(): void {
    this.electionElapsed++
    // A witness/learner keeps counting: that is what ends its lease on a dead leader.
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0
      this.startCampaign(this.preVote ? 'pre' : 'real')
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++
    this.electionElapsed++
    if (this.electionElapsed >= this.electionTicks) {
      this.electionElapsed = 0
      if (this.checkQuorum) {
        if (!this.quorumActive()) {
          this.becomeFollower(this._term, 0)
          return
        }
        for (const [id, pr] of this.prs) pr.recentActive = id === this.id
      }
      this.leadTransferee = 0
    }
    for (const [id, pr] of this.prs) {
      // A snapshot (or its acknowledgement) may have been lost: retry after a while.
      if (pr.state === 'snapshot' && ++pr.snapshotTicks >= this.electionTicks) {
        pr.becomeProbe()
        this.maybeSendAppend(id, true)
      }
    }
    if (this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0
      for (const [id, pr] of this.prs) {
        if (id === this.id) continue
        this.send({ type: MessageType.Heartbeat, to: id, commit: Math.min(pr.match, this.log.committed) })
      }
    }
  }

  private quorumActive(): boolean {
    const voters = voterIds(this.membership)
    let active = 0
    for (const id of voters) if (id === this.id || this.prs.get(id)?.recentActive) active++
    return active >= quorumSize(voters.length)
  }

  private checkCanPropose(): void {
    if (this.state !== 'leader') throw new NotLeaderError(this._leader)
    if (this.leadTransferee !== 0) throw new ProposalDroppedError('leadership transfer in progress')
  }

  private appendEntry(type: EntryType, data: Uint8Array): number {
    const index = this.log.lastIndex() + 1
    this.log.append([{ term: this._term, index, type, data }])
    this.needBroadcast = true
    this.uncommittedBytes += data.length
    return index
  }

  /** Keep one Progress per member of the (effective) membership. */
  private syncProgress(): void {
    const ids = memberIds(this.membership)
    for (const id of [...this.prs.keys()]) if (!ids.includes(id)) this.prs.delete(id)
    for (const id of ids) {
      if (this.prs.has(id)) continue
      const pr = new Progress(this.log.lastIndex() + 1, this.maxInflight)
      if (id === this.id) {
        pr.match = this.log.stabled
        pr.recentActive = true
      }
      this.prs.set(id, pr)
    }
  }

  /** Commit the highest index held by a quorum of voters, if it is from our term (§5.4.2). */
  private maybeCommit(): boolean {
    const voters = voterIds(this.membership)
    const matches = voters.map((id) => this.prs.get(id)?.match ?? 0).sort((a, b) => b - a)
    const idx = matches[quorumSize(voters.length) - 1] ?? 0
    if (idx <= this.log.committed || this.log.term(idx) !== this._term) return false
    const from = this.log.committed + 1
    if (!this.log.commitTo(idx)) return false
    // Only this term's entries were counted (reset() starts each term at 0). Per commit, so no
    // slice is allocated.
    for (let i = from; i <= idx; i++) {
      const e = this.log.entry(i)
      if (e?.term === this._term) this.uncommittedBytes -= e.data.length
    }
    return true
  }

  private bcastAppend(sendIfEmpty: boolean): void {
    for (const id of this.prs.keys()) if (id !== this.id) this.maybeSendAppend(id, sendIfEmpty)
  }

  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.prs.get(to)
    if (!pr || pr.isPaused()) return false
    const prevIndex = pr.next - 1
    const prevTerm = this.log.term(prevIndex)
    if (prevTerm === undefined) return this.sendSnapshot(to, pr)
    const ents = this.log.slice(pr.next, this.log.lastIndex() + 1, this.maxEntries, this.maxBytes)
    if (ents.length === 0 && !sendIfEmpty) return false
    this.send({
      type: MessageType.Append,
      to,
      logIndex: prevIndex,
      logTerm: prevTerm,
      entries: ents,
      commit: this.log.committed,
    })
    pr.sentEntries(ents.length, ents.length > 0 ? ents[ents.length - 1].index : prevIndex)
    return true
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    const snap = this.log.snapshot
    if (!snap) return false
    this.send({ type: MessageType.Snapshot, to, snapshot: snap })
    pr.becomeSnapshot(snap.meta.index)
    return true
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send({ type: MessageType.TimeoutNow, to })
  }

  // ---- helpers -------------------------------------------------------------------------------

  private membershipAt(index: number): Membership {
    let m = this.baseMembership
    for (const e of this.log.confEntries(index)) {
      const result = decodeConfChangeResult(e.data)
      if (result) {
        m = result
        continue
      }
      const cc = decodeConfChange(e.data)
      if (cc) m = applyConfChange(m, cc)
    }
    return m
  }

  private softState(): SoftState {
    return { leader: this._leader, role: this.role }
  }

  private hardState(): HardState {
    return { term: this._term, vote: this.vote, commit: this.log.committed }
  }

  private send(p: Partial<Message> & { type: MessageType; to: NodeId }): void {
    this.msgs.push({
      from: this.id,
      term: this._term,
      logIndex: 0,
      logTerm: 0,
      commit: 0,
      entries: [],
      reject: false,
      rejectHint: 0,
      transfer: false,
      ...p,
    })
  }
}

function sameSoft(a: SoftState, b: SoftState): boolean {
  return a.leader === b.leader && a.role === b.role
}

function sameHard(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit
}
