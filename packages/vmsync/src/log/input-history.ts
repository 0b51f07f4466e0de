// Whether the committed log has ever carried an input. It decides whether a VM that never had a
// full sync may act as primary: only for a log without inputs, since such a VM then executes
// every input from the first one (a brand-new cluster). A gap — the log was compacted before this
// process saw all of it (a restart from a compacted WAL, a snapshot from the leader) — counts as
// inputs carried: compaction happens at sync cuts, and what it hid cannot be checked. Getting
// this wrong would let an empty VM serve clients and lose every acknowledged write.
import type { EventEmitter } from 'eventemitter3'
import { type LogRecord, LogRecordKind, type OrderedLogEvents } from './ordered-log.js'

/**
 * May a VM act as primary of this log? 'fresh-log': the log never carried an input, so even a
 * never-synced VM executes every one (promote it vouching for it); 'trusted': its state already
 * is a correct execution; 'refuse': it would answer from an empty or stale state.
 */
export type PrimacyVerdict = 'fresh-log' | 'trusted' | 'refuse'

export class InputHistory {
  private carried = false
  private readonly onApply = (r: LogRecord) => {
    if (r.kind === LogRecordKind.Input) this.carried = true
  }
  private readonly onGap = () => {
    this.carried = true
  }

  /** Create it with the log, before any record is applied, so none is missed. */
  constructor(private readonly log: EventEmitter<OrderedLogEvents>) {
    log.on('apply', this.onApply)
    log.on('gap', this.onGap)
  }

  /** An input was applied, or the log was compacted before this process saw it. */
  get carriedInput(): boolean {
    return this.carried
  }

  /** The one rule for who may serve (PrimacyGate and VmReplica's own leadership follower). */
  primacyFor(vmTrusted: boolean): PrimacyVerdict {
    if (!this.carried) return 'fresh-log'
    return vmTrusted ? 'trusted' : 'refuse'
  }

  detach(): void {
    this.log.off('apply', this.onApply)
    this.log.off('gap', this.onGap)
  }
}
