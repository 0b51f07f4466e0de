// In-memory OrderedLog for fast tests and the simulated demo: one shared record array, a
// settable leader, asynchronous in-order 'apply' to every member. Members may leave (crash) and
// join later, replaying from any index, like a restarted replica whose log adapter replays.
import { EventEmitter } from 'eventemitter3'
import type { LogRecord, LogRecordKind, OrderedLog, OrderedLogEvents } from './ordered-log.js'

export class NotLeaderError extends Error {
  override name = 'NotLeaderError'
}

export class MemoryLogCluster {
  readonly records: LogRecord[] = []
  private readonly members = new Set<MemoryOrderedLog>()
  private leaderMember: MemoryOrderedLog | undefined
  private scheduled = false

  /** A new member; it will be sent every record from `replayFrom` (default 1) on. */
  join(opts: { replayFrom?: number } = {}): MemoryOrderedLog {
    const m = new MemoryOrderedLog(this, (opts.replayFrom ?? 1) - 1)
    this.members.add(m)
    this.schedule()
    return m
  }

  leave(m: MemoryOrderedLog): void {
    if (this.leaderMember === m) this.setLeader(undefined)
    this.members.delete(m)
  }

  get leader(): MemoryOrderedLog | undefined {
    return this.leaderMember
  }

  setLeader(m: MemoryOrderedLog | undefined): void {
    const prev = this.leaderMember
    if (prev === m) return
    this.leaderMember = m
    if (prev && this.members.has(prev)) prev.emit('leadership', false)
    if (m) m.emit('leadership', true)
  }

  /** @internal */
  append(from: MemoryOrderedLog, kind: LogRecordKind, data: Uint8Array): Promise<number> {
    if (from !== this.leaderMember || !this.members.has(from)) {
      return Promise.reject(new NotLeaderError('not the leader'))
    }
    const index = this.records.length + 1
    this.records.push({ index, kind, data: Uint8Array.from(data) })
    this.schedule()
    // Commit is observed after the apply pass, like a real log's propose() resolving on commit.
    return new Promise((resolve) => setImmediate(() => setImmediate(() => resolve(index))))
  }

  private schedule(): void {
    if (this.scheduled) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      for (const m of this.members) m.deliver(this.records)
    })
  }
}

export class MemoryOrderedLog extends EventEmitter<OrderedLogEvents> implements OrderedLog {
  constructor(
    private readonly cluster: MemoryLogCluster,
    private delivered: number,
  ) {
    super()
  }

  get isLeader(): boolean {
    return this.cluster.leader === this
  }

  propose(kind: LogRecordKind, data: Uint8Array): Promise<number> {
    return this.cluster.append(this, kind, data)
  }

  /** @internal */
  deliver(records: readonly LogRecord[]): void {
    while (this.delivered < records.length) {
      const r = records[this.delivered++]
      this.emit('apply', r)
    }
  }
}
