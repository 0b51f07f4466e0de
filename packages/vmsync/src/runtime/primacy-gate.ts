// Whether this replica's VM may act as primary now that its consensus log leads.
//
// Consensus elects any up-to-date voter; only a VM whose state is a correct execution of the
// committed log may serve. A backup is trusted after a (full) sync; a fresh VM is trusted only
// while the log has never carried an input (a brand-new cluster). A leader whose VM is not
// trusted would answer clients from an empty or stale VM and lose acknowledged writes, so it
// refuses to be primary and hands leadership to another VM voter, which may be trusted (a
// cluster whose only trusted VM died is unavailable until a trusted replica joins: that is
// the price of never serving from a wrong state).
//
// The decision for an untrusted VM waits for the leader's own no-op entry to be applied: by then
// every earlier entry has been applied too, so "has any input ever been committed" is known
// (InputHistory, which also counts a compacted log as having carried inputs).
//
// Use it with VmReplica's `followLeadership: false`: the gate, not the raw leadership event,
// decides the role.
import type { Entry, Replica } from '@plover/consensus'
import { EventEmitter } from 'eventemitter3'
import { InputHistory } from '../log/input-history.js'
import type { OrderedLog } from '../log/ordered-log.js'
import type { VmReplica } from '../protocol/vm-replica.js'

// Type-only import of consensus (as in consensus-log.ts): its numeric values, checked against
// EntryType.Empty and MemberRole.Voter by test/runtime/primacy-gate.test.ts.
export const CONSENSUS_EMPTY_ENTRY = 0
export const CONSENSUS_VOTER_ROLE = 0

/** What the gate uses of a consensus Replica. */
export type PrimacyReplica = Pick<
  Replica,
  'on' | 'off' | 'id' | 'role' | 'term' | 'membership' | 'transferLeadership'
>

/** What the gate uses of a VmReplica. */
export type PrimacyVm = Pick<VmReplica, 'role' | 'trusted' | 'promote' | 'demote'>

export interface PrimacyGateOptions {
  readonly replica: PrimacyReplica
  /** The replica's log as vmsync sees it (ConsensusOrderedLog): leadership and applied records. */
  readonly log: OrderedLog
  readonly vm: PrimacyVm
  /** How often a refusing leader offers leadership to the next VM voter (default 1000 ms). */
  readonly transferEveryMs?: number
}

export interface PrimacyGateEvents {
  /** The VM is primary now. `freshLog`: trusted only because the log never carried an input. */
  promoted: (info: { readonly trusted: boolean; readonly freshLog: boolean }) => void
  /** The log lost leadership: the VM is a backup again (held outputs dropped). */
  demoted: () => void
  /** Leader with an untrusted VM in a log that carried inputs: not primary, handing over. */
  refused: () => void
  /** Leadership offered to another VM voter. */
  transfer: (to: number) => void
  /** No other VM voter to hand over to, or the core refused the transfer. */
  'transfer-failed': (reason: string) => void
}

export class PrimacyGate extends EventEmitter<PrimacyGateEvents> {
  private readonly history: InputHistory
  /** Term of the last leader no-op applied (ours, if it equals the current term). */
  private noopTerm = 0
  private awaitingNoop = false
  private timer: NodeJS.Timeout | undefined
  private nextCandidate = 0
  private closed = false
  private readonly onApply = (e: Entry) => {
    if ((e.type as number) !== CONSENSUS_EMPTY_ENTRY) return
    this.noopTerm = e.term
    if (this.awaitingNoop && e.term === this.o.replica.term) {
      this.awaitingNoop = false
      this.decide()
    }
  }
  private readonly onLeadership = (isLeader: boolean) => this.leadershipChanged(isLeader)

  /**
   * Create it right after the replica opens (before the event loop turns, as the log adapter):
   * the replica applies its recovered entries from the next turn on, and none must be missed.
   * If the log already leads, the gate acts on it at once.
   */
  constructor(private readonly o: PrimacyGateOptions) {
    super()
    this.history = new InputHistory(o.log)
    o.replica.on('apply', this.onApply)
    o.log.on('leadership', this.onLeadership)
    if (o.log.isLeader) queueMicrotask(() => !this.closed && this.leadershipChanged(o.log.isLeader))
  }

  /** The committed log has carried an input (or was compacted before this process saw it). */
  get carriedInput(): boolean {
    return this.history.carriedInput
  }

  /** True while this leader refuses to be primary and offers leadership to others. */
  get refusing(): boolean {
    return this.timer !== undefined
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.stopTransfers()
    this.history.detach()
    this.o.replica.off('apply', this.onApply)
    this.o.log.off('leadership', this.onLeadership)
  }

  private leadershipChanged(isLeader: boolean): void {
    this.stopTransfers()
    const vm = this.o.vm
    if (!isLeader) {
      this.awaitingNoop = false
      if (vm.role === 'primary') {
        vm.demote()
        this.emit('demoted')
      }
      return
    }
    if (vm.trusted) {
      this.promote(false)
      return
    }
    if (this.noopTerm === this.o.replica.term) this.decide()
    else this.awaitingNoop = true
  }

  private decide(): void {
    if (this.o.replica.role !== 'leader') return
    const verdict = this.history.primacyFor(this.o.vm.trusted)
    if (verdict !== 'refuse') {
      this.promote(verdict === 'fresh-log')
      return
    }
    this.emit('refused')
    this.transfer()
    this.timer = setInterval(() => this.transfer(), this.o.transferEveryMs ?? 1000)
  }

  private promote(freshLog: boolean): void {
    const vm = this.o.vm
    if (vm.role === 'primary') return
    vm.promote({ trusted: freshLog })
    this.emit('promoted', { trusted: vm.trusted, freshLog })
  }

  private transfer(): void {
    const r = this.o.replica
    if (r.role !== 'leader') {
      this.stopTransfers()
      return
    }
    const others = r.membership.members
      .filter((m) => (m.role as number) === CONSENSUS_VOTER_ROLE && m.id !== r.id)
      .map((m) => m.id)
    if (others.length === 0) {
      this.emit('transfer-failed', 'no other VM voter to hand leadership to')
      return
    }
    const to = others[this.nextCandidate++ % others.length]!
    this.emit('transfer', to)
    try {
      r.transferLeadership(to)
    } catch (err) {
      this.emit('transfer-failed', `transfer to ${to} refused: ${(err as Error).message}`)
    }
  }

  private stopTransfers(): void {
    clearInterval(this.timer)
    this.timer = undefined
  }
}
