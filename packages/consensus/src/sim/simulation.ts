// Deterministic, seeded simulation of a cluster of RaftCores under faults: message loss,
// duplication, reordering and delay; partitions; crashes that keep only what was durably
// persisted (with torn writes); uneven ticks; and PLOVER's "primary dies right after the
// witness acked" fault. Safety invariants are checked after every step; client operations on
// a replicated key-value store are checked for linearizability at the end.
import { NotLeaderError, ProposalDroppedError } from '../core/errors.js'
import { describeMembership, roleOf } from '../core/membership.js'
import { RaftCore } from '../core/raft.js'
import {
  ConfChangeType,
  EntryType,
  type Member,
  MemberRole,
  type Message,
  MessageType,
  type NodeId,
} from '../core/types.js'
import { checkOperations } from '../linearizability/checker.js'
import { type KvInput, type KvOperation, kvModel } from '../linearizability/kv.js'
import { describeMessage } from './describe.js'
import { SafetyChecker, SafetyViolation } from './invariants.js'
import { decodeCommand, encodeCommand, KvApp } from './kv-app.js'
import { Rng } from './rng.js'
import { MemoryStorage } from './storage.js'

export interface SimConfig {
  seed: number
  /** Voter ids are 1..voters, witnesses follow. */
  voters: number
  witnesses: number
  /** Fault-injection steps (then a fault-free phase to converge and resolve every operation). */
  steps: number
  clients: number
  keys: number
  /** Per message. */
  loss: number
  duplicate: number
  /** Max delivery delay in steps; any ready message is delivered with p=1/2 per step (reordering). */
  maxDelay: number
  /** Per step. */
  crash: number
  partition: number
  /** Per successful proposal (needs a witness): deliver to the witness only, then kill the leader. */
  witnessAckFault: number
  /** Probability that a crash tears the pending write (a prefix of its records survives). */
  tornWrite: number
  /** Per Ready: the replica crashes in the middle of persisting it (a prefix survives, nothing is sent). */
  crashDuringWrite: number
  /** Per step, while a voter is down: replace it (remove it, then add a fresh replica). */
  replace: number
  /** Compact once this many entries are applied beyond the last snapshot. */
  compactEvery: number
  /** The leaders' maxUncommittedBytes: small, so a cut-off leader refuses proposals. */
  maxUncommittedBytes: number
  electionTicks: number
  heartbeatTicks: number
  preVote: boolean
  checkQuorum: boolean
  /** Debugging a seed: receives one line per event (and per delivered message if verbose). */
  trace?: (line: string) => void
  traceMessages?: boolean
}

export const defaultSimConfig: Omit<SimConfig, 'seed' | 'voters' | 'witnesses'> = {
  steps: 1200,
  clients: 3,
  keys: 3,
  loss: 0.05,
  duplicate: 0.03,
  maxDelay: 4,
  crash: 0.004,
  partition: 0.004,
  witnessAckFault: 0.05,
  tornWrite: 0.5,
  crashDuringWrite: 0.001,
  replace: 0.01,
  compactEvery: 25,
  maxUncommittedBytes: 160,
  electionTicks: 10,
  heartbeatTicks: 2,
  preVote: true,
  checkQuorum: true,
}

export interface SimStats {
  steps: number
  leaders: number
  commits: number
  operations: number
  crashes: number
  tornWrites: number
  partitions: number
  witnessFaults: number
  witnessRecoveries: number
  catchUps: number
  snapshotsSent: number
  compactions: number
  replacements: number
  /** Proposals a leader refused because maxUncommittedBytes were uncommitted. */
  proposalsDropped: number
}

export type SimResult =
  | { ok: true; stats: SimStats }
  | { ok: false; error: string; step: number; stats: SimStats }

interface SimNode {
  id: NodeId
  role: MemberRole
  storage: MemoryStorage
  core: RaftCore | undefined
  app: KvApp
  appliedIndex: number
  restartAt: number
  /** Probability of ticking in a step: clocks run at different speeds. */
  tickRate: number
}

interface InFlight {
  m: Message
  at: number
}

interface PendingOp {
  client: number
  input: KvInput
  call: number
  ret?: number
  output?: string
}

interface Client {
  id: number
  busy: { op: number; deadline: number } | undefined
  leaderHint: NodeId
}

interface Replacement {
  dead: NodeId
  removeIndex: number
  added?: { id: NodeId; index: number }
}

interface WitnessFault {
  leader: NodeId
  op: number
  until: number
}

const WITNESS_FAULT_STEPS = 400

export function runSimulation(cfg: SimConfig): SimResult {
  return new Simulation(cfg).run()
}

class Simulation {
  private readonly rng: Rng
  private readonly nodes: SimNode[] = []
  private net: InFlight[] = []
  private groups: Map<NodeId, number> | undefined
  private healAt = 0
  private now = 0
  private faults = true
  private readonly checker = new SafetyChecker()
  private readonly ops: PendingOp[] = []
  private readonly clients: Client[] = []
  private clock = 0
  private witnessFault: WitnessFault | undefined
  private replacement: Replacement | undefined
  private readonly terms = new Set<number>()
  private readonly lastRole = new Map<NodeId, string>()
  private readonly stats: SimStats = emptySimStats()

  constructor(private readonly cfg: SimConfig) {
    this.rng = new Rng(cfg.seed)
    const members: Member[] = []
    for (let i = 1; i <= cfg.voters + cfg.witnesses; i++) {
      members.push({ id: i, role: i <= cfg.voters ? MemberRole.Voter : MemberRole.Witness })
    }
    for (const m of members) this.addNode(m.id, m.role, { members })
    for (let c = 0; c < cfg.clients; c++) this.clients.push({ id: c, busy: undefined, leaderHint: 0 })
  }

  run(): SimResult {
    try {
      for (; this.now < this.cfg.steps; ) this.step()
      this.converge()
      this.checkHistory()
      this.stats.steps = this.now
      this.stats.leaders = this.terms.size
      return { ok: true, stats: this.stats }
    } catch (err) {
      this.stats.steps = this.now
      const e = err as Error
      const msg = e instanceof SafetyViolation ? e.message : `${e.name}: ${e.message}\n${e.stack ?? ''}`
      return { ok: false, error: msg, step: this.now, stats: this.stats }
    }
  }

  // ---- one step ------------------------------------------------------------------------------

  private step(): void {
    this.now++
    for (const n of this.nodes) if (!n.core && n.restartAt <= this.now) this.restart(n)
    if (this.faults && !this.witnessFault) this.injectFaults()
    if (this.groups && this.now >= this.healAt) this.groups = undefined
    for (const n of this.nodes) if (n.core && this.rng.chance(n.tickRate)) n.core.tick()
    this.deliverSome()
    for (const n of this.nodes) if (n.core?.hasReady() && this.rng.chance(0.8)) this.processReady(n)
    if (this.faults) this.runClients()
    this.checkWitnessFault()
    this.advanceReplacement()
    for (const n of this.nodes) if (n.core) this.observe(n.core)
  }

  private log(line: string): void {
    this.cfg.trace?.(`[${this.now}] ${line}`)
  }

  private observe(core: RaftCore): void {
    if (this.cfg.trace) {
      const r = `${core.role}@${core.term} leader=${core.leader} last=${core.lastIndex} commit=${core.commitIndex} members=(${describeMembership(core.membership)})`
      if (this.lastRole.get(core.id) !== r) this.log(`${core.id}: ${r}`)
      this.lastRole.set(core.id, r)
    }
    this.checker.observe(core)
    if (core.role === 'leader') this.terms.add(core.term)
  }

  private injectFaults(): void {
    const r = this.rng
    if (r.chance(this.cfg.crash)) {
      const live = this.nodes.filter((n) => n.core)
      // Keep a majority alive most of the time so the run makes progress between faults.
      if (live.length > 0 && (live.length > Math.floor(this.nodes.length / 2) + 1 || r.chance(0.2))) {
        this.crash(r.pick(live), 20 + r.int(200))
      }
    }
    if (!this.replacement && this.stats.replacements < 2 && r.chance(this.cfg.replace))
      this.startReplacement()
    if (!this.groups && r.chance(this.cfg.partition)) {
      this.groups = new Map()
      const isolate = r.chance(0.5)
      const victim = r.pick(this.nodes).id
      for (const n of this.nodes) this.groups.set(n.id, isolate ? (n.id === victim ? 1 : 0) : r.int(2))
      this.healAt = this.now + 20 + r.int(200)
      this.stats.partitions++
      this.log(`partition ${JSON.stringify([...this.groups])} until ${this.healAt}`)
    }
  }

  // ---- replicas ------------------------------------------------------------------------------

  private addNode(id: NodeId, role: MemberRole, initial: { members: Member[] }): SimNode {
    const n: SimNode = {
      id,
      role,
      storage: new MemoryStorage(initial),
      core: undefined,
      app: new KvApp(),
      appliedIndex: 0,
      restartAt: 0,
      tickRate: 0.2 + this.rng.next() * 0.3,
    }
    this.start(n)
    this.nodes.push(n)
    return n
  }

  private leaderCore(): RaftCore | undefined {
    return this.nodes.find((n) => n.core?.role === 'leader')?.core
  }

  /** Replace a dead voter, one server at a time: remove it, then add a fresh replica. */
  private startReplacement(): void {
    const leader = this.leaderCore()
    if (!leader) return
    const dead = this.nodes.find((n) => !n.core && roleOf(leader.membership, n.id) === MemberRole.Voter)
    if (!dead) return
    try {
      const removeIndex = leader.proposeConfChange({
        type: ConfChangeType.RemoveMember,
        id: dead.id,
        role: 0,
      })
      this.replacement = { dead: dead.id, removeIndex }
      this.log(`replace: remove ${dead.id} at ${removeIndex}`)
    } catch {
      // e.g. a change is still pending or the leader has not committed in its term yet
    }
  }

  private advanceReplacement(): void {
    const rep = this.replacement
    const leader = this.leaderCore()
    if (!rep || !leader) return
    const m = leader.membership
    if (!rep.added) {
      if (roleOf(m, rep.dead) !== undefined) {
        // The removal was lost with a leader change: give up, another one may start later.
        if (leader.termAt(rep.removeIndex) === undefined || leader.commitIndex >= rep.removeIndex)
          this.replacement = undefined
        return
      }
      if (leader.commitIndex < rep.removeIndex) return
      const id = this.nodes.length + 1
      try {
        const index = leader.proposeConfChange({ type: ConfChangeType.AddMember, id, role: MemberRole.Voter })
        // The new replica starts empty and learns the membership from the log or a snapshot;
        // it is wired on the leader's side of any current partition.
        this.addNode(id, MemberRole.Voter, { members: [] })
        this.groups?.set(id, this.groups.get(leader.id) ?? 0)
        rep.added = { id, index }
        this.log(`replace: add ${id} at ${index}`)
      } catch {
        // not yet possible (pending change / no commit in this term); retry next step
      }
      return
    }
    if (roleOf(m, rep.added.id) === undefined) {
      this.replacement = undefined
      return
    }
    if (leader.commitIndex >= rep.added.index) {
      this.replacement = undefined
      this.stats.replacements++
    }
  }

  private start(n: SimNode): void {
    const rand = this.rng.fork()
    n.core = new RaftCore(
      {
        id: n.id,
        electionTicks: this.cfg.electionTicks,
        heartbeatTicks: this.cfg.heartbeatTicks,
        random: () => rand.next(),
        preVote: this.cfg.preVote,
        checkQuorum: this.cfg.checkQuorum,
        maxInflightMsgs: 4,
        maxEntriesPerMsg: 8,
        maxUncommittedBytes: this.cfg.maxUncommittedBytes,
      },
      n.storage.restored(),
    )
    // The app's state is rebuilt from the durable snapshot; the core replays the rest.
    const snap = n.storage.snapshot
    n.app = snap ? KvApp.restore(snap.data) : new KvApp()
    n.appliedIndex = snap?.meta.index ?? 0
  }

  private restart(n: SimNode): void {
    this.log(`${n.id}: restart`)
    this.start(n)
  }

  /** Volatile state is lost; a write in progress may be torn; nothing unsent is sent. */
  private crash(n: SimNode, downFor: number): void {
    const core = n.core
    if (!core) return
    if (core.hasReady() && this.rng.chance(this.cfg.tornWrite)) {
      const rd = core.ready()
      n.storage.persist(rd, this.rng.int(MemoryStorage.records(rd) + 1))
      this.stats.tornWrites++
    }
    n.core = undefined
    n.restartAt = this.now + downFor
    this.stats.crashes++
    this.log(`${n.id}: crash (restart at ${n.restartAt})`)
  }

  /** Persist → send → apply → advance (the Ready contract). */
  private processReady(n: SimNode, mayCrash = true): void {
    const core = n.core
    if (!core) return
    if (mayCrash && this.faults && !this.witnessFault && this.rng.chance(this.cfg.crashDuringWrite)) {
      const rd = core.ready()
      n.storage.persist(rd, this.rng.int(MemoryStorage.records(rd) + 1))
      this.stats.tornWrites++
      n.core = undefined
      n.restartAt = this.now + 20 + this.rng.int(200)
      this.stats.crashes++
      return
    }
    const rd = core.ready()
    n.storage.persist(rd)
    for (const m of rd.messages) this.send(m)
    if (rd.snapshot) {
      n.app = KvApp.restore(rd.snapshot.data)
      n.appliedIndex = rd.snapshot.meta.index
    }
    for (const e of rd.committed) {
      if (e.index !== n.appliedIndex + 1) {
        throw new SafetyViolation(`${n.id} applied ${e.index} after ${n.appliedIndex} (gap)`)
      }
      n.appliedIndex = e.index
      this.checker.observeApply(n.id, e)
      if (e.type !== EntryType.Normal) continue
      const cmd = decodeCommand(e.data)
      const result = n.app.apply(cmd)
      const op = this.ops[cmd.id]
      if (op.ret === undefined) {
        // The operation took effect (committed) no later than this moment.
        op.ret = this.clock++
        op.output = result
        this.stats.commits++
        for (const c of this.clients) if (c.busy?.op === cmd.id) c.busy = undefined
      } else if (op.output !== result) {
        throw new SafetyViolation(`${n.id} computed a different result for operation ${cmd.id}`)
      }
    }
    core.advance(rd)
    if (n.appliedIndex - (n.storage.snapshot?.meta.index ?? 0) >= this.cfg.compactEvery) {
      const snap = core.compact(n.appliedIndex, n.app.snapshot())
      n.storage.compact(snap)
      this.stats.compactions++
    }
  }

  // ---- network -------------------------------------------------------------------------------

  private send(m: Message): void {
    if (m.type === MessageType.CatchUp) this.stats.catchUps++
    if (m.type === MessageType.Snapshot) this.stats.snapshotsSent++
    if (this.faults && this.rng.chance(this.cfg.loss)) return
    const copies = this.faults && this.rng.chance(this.cfg.duplicate) ? 2 : 1
    for (let i = 0; i < copies; i++) {
      this.net.push({ m, at: this.now + (this.faults ? this.rng.int(this.cfg.maxDelay + 1) : 0) })
    }
  }

  private deliverSome(): void {
    const keep: InFlight[] = []
    const now: InFlight[] = []
    for (const f of this.net) {
      if (f.at <= this.now && this.rng.chance(0.5)) now.push(f)
      else keep.push(f)
    }
    this.net = keep
    for (const f of now) this.deliver(f.m)
  }

  private deliver(m: Message): void {
    const to = this.nodes[m.to - 1]
    if (!to?.core) return
    if (this.groups && this.groups.get(m.from) !== this.groups.get(m.to)) return
    if (this.cfg.traceMessages) this.log(describeMessage(m))
    to.core.step(m)
  }

  // ---- clients -------------------------------------------------------------------------------

  private runClients(): void {
    for (const c of this.clients) {
      if (c.busy && this.now > c.busy.deadline) c.busy = undefined // gave up; the op stays pending
      if (c.busy || !this.rng.chance(0.3)) continue
      const live = this.nodes.filter((n) => n.core && n.role === MemberRole.Voter)
      if (live.length === 0) continue
      const hinted = this.nodes[c.leaderHint - 1]
      const target = hinted?.core ? hinted : this.rng.pick(live)
      const core = target.core as RaftCore
      const input = this.randomInput()
      const id = this.ops.length
      let index: number
      try {
        index = core.propose(EntryType.Normal, encodeCommand({ id, input }))
      } catch (err) {
        if (err instanceof NotLeaderError) {
          c.leaderHint = err.leader
          continue
        }
        // Refused at once, never appended: no operation to record.
        if (err instanceof ProposalDroppedError) {
          this.stats.proposalsDropped++
          continue
        }
        throw err
      }
      c.leaderHint = target.id
      this.ops.push({ client: c.id, input, call: this.clock++ })
      this.stats.operations++
      c.busy = { op: id, deadline: this.now + 150 }
      if (this.cfg.witnesses > 0 && !this.witnessFault && this.rng.chance(this.cfg.witnessAckFault)) {
        this.injectWitnessAckFault(target, id, index)
      }
    }
  }

  private randomInput(): KvInput {
    const key = `k${this.rng.int(this.cfg.keys)}`
    const r = this.rng.next()
    if (r < 0.4) return { op: 'get', key }
    if (r < 0.6) return { op: 'put', key, value: `p${this.clock}` }
    return { op: 'append', key, value: `a${this.clock}.` }
  }

  /**
   * DESIGN.md §4: the leader's new entry reaches only the witness, which persists and acks it;
   * then the leader dies. A backup must still be elected (witness catch-up) and the entry
   * must survive, before the old leader comes back.
   */
  private injectWitnessAckFault(leader: SimNode, op: number, index: number): void {
    const lc = leader.core
    if (this.groups || !lc) return
    // Only meaningful when a backup could take over: every other voter is up and caught up
    // (a replica still joining cannot lead; PLOVER would be unprotected until its first sync).
    let backups = 0
    for (const n of this.nodes) {
      if (n.id === leader.id || roleOf(lc.membership, n.id) !== MemberRole.Voter) continue
      if (
        !n.core ||
        roleOf(n.core.membership, n.id) !== MemberRole.Voter ||
        n.core.lastIndex < lc.commitIndex
      )
        return
      backups++
    }
    if (backups === 0) return
    const witnesses = this.nodes.filter((n) => n.core && roleOf(lc.membership, n.id) === MemberRole.Witness)
    if (witnesses.length === 0) return
    const term = lc.term
    this.processReady(leader, false)
    const wids = new Set(witnesses.map((w) => w.id))
    const toWitnesses = this.net.filter((f) => f.m.from === leader.id && wids.has(f.m.to))
    this.net = this.net.filter((f) => f.m.from !== leader.id)
    for (const f of toWitnesses) this.deliver(f.m)
    for (const w of witnesses) if (w.core?.hasReady()) this.processReady(w, false)
    this.crash(leader, WITNESS_FAULT_STEPS)
    // A real instance of the fault only if the leader and the witnesses that now durably hold
    // the entry are a majority: then it is committed (though nobody alive knows it) and must
    // survive. (The Append may have been lost, or not sent to a follower being probed.)
    const holders =
      1 + witnesses.filter((w) => w.core?.termAt(index) === term && w.storage.hardState.term >= term).length
    const voters = lc.membership.members.filter((m) => m.role !== MemberRole.Learner).length
    if (holders < Math.floor(voters / 2) + 1) return
    this.witnessFault = { leader: leader.id, op, until: this.now + WITNESS_FAULT_STEPS }
    this.log(`witness fault: witnesses hold ${term}/${index}, leader ${leader.id} killed`)
    this.stats.witnessFaults++
  }

  private checkWitnessFault(): void {
    const f = this.witnessFault
    if (!f) return
    if (this.ops[f.op].ret !== undefined) {
      this.witnessFault = undefined
      this.stats.witnessRecoveries++
      return
    }
    if (this.now >= f.until) {
      // Did the witness actually hold the entry? If it never got it, the op may rightly be lost.
      throw new SafetyViolation(
        `liveness: leader ${f.leader} died right after the witness acked operation ${f.op}; no backup committed it within ${WITNESS_FAULT_STEPS} steps`,
      )
    }
  }

  // ---- end of run ----------------------------------------------------------------------------

  /** Stop faults, heal, restart everyone, and run until every replica applied the same log. */
  private converge(): void {
    this.faults = false
    this.groups = undefined
    // A witness fault still in progress was cut short by the end of the run: not verified.
    if (this.witnessFault) this.stats.witnessFaults--
    this.witnessFault = undefined
    this.replacement = undefined
    for (const n of this.nodes) if (!n.core) n.restartAt = this.now
    const deadline = this.now + 3000
    while (this.now < deadline) {
      this.step()
      const leader = this.nodes.find((n) => n.core?.role === 'leader')?.core
      if (
        !leader ||
        leader.commitIndex !== leader.lastIndex ||
        leader.termAt(leader.commitIndex) !== leader.term
      )
        continue
      if (this.net.length > 0) continue
      // Replicas removed from the membership no longer receive the log.
      const members = this.nodes.filter((n) => roleOf(leader.membership, n.id) !== undefined)
      if (members.every((n) => n.core && !n.core.hasReady() && n.appliedIndex === leader.lastIndex)) return
    }
    throw new SafetyViolation('liveness: the cluster did not converge within 3000 fault-free steps')
  }

  private checkHistory(): void {
    // After convergence, an operation that was never applied never will be: it did not happen.
    const history: KvOperation[] = []
    for (const op of this.ops) {
      if (op.ret === undefined) continue
      history.push({
        client: op.client,
        input: op.input,
        call: op.call,
        ret: op.ret,
        output: { value: op.output ?? '' },
      })
    }
    const r = checkOperations(kvModel, history)
    if (!r.ok) {
      throw new SafetyViolation(
        r.timedOut
          ? `linearizability check timed out on partition ${r.partition} (${r.operations} ops)`
          : `history is not linearizable (partition ${r.partition}, ${r.operations} ops)`,
      )
    }
  }
}

/** All-zero counters (the start of a run, or of a sum over runs). */
export function emptySimStats(): SimStats {
  return {
    steps: 0,
    leaders: 0,
    commits: 0,
    operations: 0,
    crashes: 0,
    tornWrites: 0,
    partitions: 0,
    witnessFaults: 0,
    witnessRecoveries: 0,
    catchUps: 0,
    snapshotsSent: 0,
    compactions: 0,
    replacements: 0,
    proposalsDropped: 0,
  }
}
