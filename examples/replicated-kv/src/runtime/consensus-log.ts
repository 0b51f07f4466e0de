// Adapter: @plover/consensus's Replica as vmsync's OrderedLog. Generic (nothing here is specific
// to this example) — a candidate to move into a package.
//   - committed entries of the three vmsync kinds become 'apply' records, in index order;
//     consensus-internal entries (Empty, ConfChange) are not the VM's business;
//   - 'leadership' follows the core's role: true only while it is 'leader'. The core drops the
//     role on step-down and on check-quorum, so the VM stops releasing outputs at that moment.
import { type Entry, EntryType, type Replica, type Role } from '@plover/consensus'
import type { LogRecordKind, OrderedLog, OrderedLogEvents } from '@plover/vmsync'
import { EventEmitter } from 'eventemitter3'

const VMSYNC_KINDS = new Set<number>([EntryType.Normal, EntryType.SyncMarker, EntryType.SyncDone])

export class ConsensusOrderedLog extends EventEmitter<OrderedLogEvents> implements OrderedLog {
  private leader = false
  private readonly onApply = (e: Entry) => {
    if (!VMSYNC_KINDS.has(e.type)) return
    // LogRecordKind's numeric values are EntryType's (Input = Normal).
    this.emit('apply', { index: e.index, kind: e.type as unknown as LogRecordKind, data: e.data })
  }
  private readonly onRole = (role: Role) => {
    const isLeader = role === 'leader'
    if (isLeader === this.leader) return
    this.leader = isLeader
    this.emit('leadership', isLeader)
  }

  constructor(private readonly replica: Replica) {
    super()
    replica.on('apply', this.onApply)
    replica.on('role', this.onRole)
    this.leader = replica.role === 'leader'
  }

  get isLeader(): boolean {
    return this.leader && this.replica.role === 'leader'
  }

  propose(kind: LogRecordKind, data: Uint8Array): Promise<number> {
    return this.replica.propose(kind as unknown as EntryType, data)
  }

  detach(): void {
    this.replica.off('apply', this.onApply)
    this.replica.off('role', this.onRole)
  }
}
