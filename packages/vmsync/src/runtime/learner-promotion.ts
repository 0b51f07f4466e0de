// Makes a joining backup a voter once it can be one. A VM replica joins as a learner — a voter
// could be elected before its full sync and would have to refuse to serve — and becomes a voter
// only after its full sync protected the primary's outputs. Doing that second membership change
// here, on the leader, at the moment the outputs become protected with that very backup, closes
// the window in which an operator who forgot the step leaves the cluster with a learner that
// could never take over.
//
// The backup's identity comes from the sync link (SyncLinks: the dialer's first frame).
import type { Entry, Replica } from '@plover/consensus'
import { EventEmitter } from 'eventemitter3'
import type { VmReplica } from '../protocol/vm-replica.js'

// Type-only import of consensus: ConfChangeType.AddMember, MemberRole.Voter and .Learner,
// EntryType.ConfChange, checked by test/runtime/learner-promotion.test.ts.
export const CONSENSUS_ADD_MEMBER = 0
export const CONSENSUS_LEARNER_ROLE = 2
export const CONSENSUS_CONF_CHANGE_ENTRY = 2
const CONSENSUS_VOTER = 0

export type PromotionReplica = Pick<Replica, 'on' | 'off' | 'role' | 'membership' | 'proposeConfChange'>

export interface LearnerPromotionOptions {
  readonly replica: PromotionReplica
  readonly vm: Pick<VmReplica, 'on' | 'off' | 'role' | 'guard'>
  /** The replica id of the backup currently attached to this primary, if known. */
  readonly backupId: () => number | undefined
  /** Wait before asking again when the change was refused (another change pending). Default 500 ms. */
  readonly retryMs?: number
}

export interface LearnerPromotionEvents {
  /** Learner `id` is a voter from log index `index` on. */
  promoted: (id: number, index: number) => void
  /** The change was refused or not committed; retried while it still applies. */
  failed: (id: number, error: Error) => void
}

export class LearnerPromotion extends EventEmitter<LearnerPromotionEvents> {
  private timer: NodeJS.Timeout | undefined
  private inFlight = false
  private closed = false
  private readonly onProtected = () => this.maybePromote()
  // WHY also on membership changes: the backup may finish its full sync before the change that
  // makes it a learner commits (a spare started before the operator added it).
  private readonly onApply = (e: Entry) => {
    if ((e.type as number) === CONSENSUS_CONF_CHANGE_ENTRY) this.maybePromote()
  }

  constructor(private readonly o: LearnerPromotionOptions) {
    super()
    o.vm.on('protected', this.onProtected)
    o.replica.on('apply', this.onApply)
  }

  close(): void {
    this.closed = true
    clearTimeout(this.timer)
    this.o.vm.off('protected', this.onProtected)
    this.o.replica.off('apply', this.onApply)
  }

  /** The learner to promote now, if any: leader, primary, protected, backup known and a learner. */
  private candidate(): number | undefined {
    const { replica, vm } = this.o
    if (this.closed || replica.role !== 'leader' || vm.role !== 'primary' || !vm.guard.isProtected)
      return undefined
    const id = this.o.backupId()
    if (id === undefined) return undefined
    const m = replica.membership.members.find((x) => x.id === id)
    return (m?.role as number | undefined) === CONSENSUS_LEARNER_ROLE ? id : undefined
  }

  private maybePromote(): void {
    const id = this.candidate()
    if (id === undefined || this.inFlight) return
    this.inFlight = true
    this.o.replica
      .proposeConfChange({ type: CONSENSUS_ADD_MEMBER, id, role: CONSENSUS_VOTER })
      .then(
        (index) => this.emit('promoted', id, index),
        (err: Error) => {
          this.emit('failed', id, err)
          clearTimeout(this.timer)
          this.timer = setTimeout(() => this.maybePromote(), this.o.retryMs ?? 500)
        },
      )
      .finally(() => {
        this.inFlight = false
      })
  }
}
