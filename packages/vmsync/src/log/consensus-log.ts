// Adapter: @plover/consensus's Replica as vmsync's OrderedLog.
//   - committed entries of the vmsync kinds become 'apply' records, in index order;
//     consensus-internal entries (the leader's no-op, membership changes) are not the VM's
//     business;
//   - 'leadership' follows the core's role: true only while it is 'leader'. The core drops the
//     role on step-down and on check-quorum, so the VM stops releasing outputs at that moment;
//   - a snapshot (installed from the leader, or recovered at open) becomes 'gap': the records it
//     covers are never applied here;
//   - it is the CompactableLog that LogCompaction shortens.
// Type-only import: LogRecordKind's numeric values are EntryType's (Input = Normal, SyncMarker,
// SyncDone, Unprotect; test/log/consensus-log.test.ts checks it), so no consensus code is loaded here.
import type { Entry, Replica, Role, Snapshot } from '@plover/consensus'
import { EventEmitter } from 'eventemitter3'
import type { CompactableLog } from './log-compaction.js'
import { type LogRecord, LogRecordKind, type OrderedLog, type OrderedLogEvents } from './ordered-log.js'

/** What the adapter uses of a consensus Replica. */
export type ConsensusLogReplica = Pick<
  Replica,
  'on' | 'off' | 'role' | 'propose' | 'compact' | 'appliedIndex' | 'firstIndex'
>

const VMSYNC_KINDS = new Set<number>([
  LogRecordKind.Input,
  LogRecordKind.SyncMarker,
  LogRecordKind.SyncDone,
  LogRecordKind.Unprotect,
])

export class ConsensusOrderedLog
  extends EventEmitter<OrderedLogEvents>
  implements OrderedLog, CompactableLog
{
  private leader = false
  private detached = false
  private readonly onApply = (e: Entry) => {
    if (!VMSYNC_KINDS.has(e.type)) return
    const record: LogRecord = { index: e.index, kind: e.type as number as LogRecordKind, data: e.data }
    this.emit('apply', record)
  }
  private readonly onSnapshot = (s: Snapshot) => this.emit('gap', s.meta.index)
  private readonly onRole = (role: Role) => {
    const isLeader = role === 'leader'
    if (isLeader === this.leader) return
    this.leader = isLeader
    this.emit('leadership', isLeader)
  }

  /**
   * Create it right after the replica opens (before the event loop turns): the replica applies
   * its recovered entries from the next turn on, and none must be missed.
   */
  constructor(private readonly replica: ConsensusLogReplica) {
    super()
    replica.on('apply', this.onApply)
    replica.on('role', this.onRole)
    replica.on('snapshot', this.onSnapshot)
    this.leader = replica.role === 'leader'
  }

  get isLeader(): boolean {
    return !this.detached && this.leader && this.replica.role === 'leader'
  }

  propose(kind: LogRecordKind, data: Uint8Array): Promise<number> {
    return this.replica.propose(kind as number, data)
  }

  get appliedIndex(): number {
    return this.replica.appliedIndex
  }

  get compactedThrough(): number {
    return this.replica.firstIndex - 1
  }

  compact(index: number, data: Uint8Array): Promise<void> {
    return this.replica.compact(index, data)
  }

  /** Stops following the replica (shutdown). */
  detach(): void {
    this.detached = true
    this.replica.off('apply', this.onApply)
    this.replica.off('role', this.onRole)
    this.replica.off('snapshot', this.onSnapshot)
  }
}
