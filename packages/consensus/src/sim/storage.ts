// Simulated durable storage: exactly what a Ready asked to persist, in WAL order (snapshot,
// entries, hard state). A crash may tear a write: only a prefix of its records survives, and
// nothing that depended on it was sent (messages go out only after the write completes).
import type { Ready, RestoredState } from '../core/raft.js'
import type { Entry, HardState, Membership, Snapshot } from '../core/types.js'

export class MemoryStorage {
  hardState: HardState = { term: 0, vote: 0, commit: 0 }
  snapshot: Snapshot | undefined
  /** Durable entries after the snapshot, contiguous. */
  entries: Entry[] = []
  readonly initialMembership: Membership

  constructor(initialMembership: Membership) {
    this.initialMembership = initialMembership
  }

  /** Number of records a Ready's write consists of (for torn-write simulation). */
  static records(rd: Ready): number {
    return (rd.snapshot ? 1 : 0) + rd.entries.length + (rd.hardState ? 1 : 0)
  }

  /** Persist the first `limit` records of rd (all by default). */
  persist(rd: Ready, limit = Number.POSITIVE_INFINITY): void {
    let budget = limit
    if (rd.snapshot) {
      if (budget-- <= 0) return
      this.snapshot = rd.snapshot
      this.entries = []
    }
    for (const e of rd.entries) {
      if (budget-- <= 0) return
      const offset = this.snapshot?.meta.index ?? 0
      const pos = e.index - offset - 1
      if (pos < 0) continue
      if (pos > this.entries.length)
        throw new Error(`storage gap: entry ${e.index} after ${offset + this.entries.length}`)
      this.entries.length = pos
      this.entries.push(e)
    }
    if (rd.hardState) {
      if (budget-- <= 0) return
      this.hardState = rd.hardState
    }
  }

  /** The app compacted: keep the snapshot, drop the entries it covers. */
  compact(s: Snapshot): void {
    if (this.snapshot && this.snapshot.meta.index >= s.meta.index) return
    this.entries = this.entries.filter((e) => e.index > s.meta.index)
    this.snapshot = s
  }

  restored(): RestoredState {
    return {
      hardState: this.hardState,
      snapshot: this.snapshot,
      entries: [...this.entries],
      membership: this.initialMembership,
    }
  }
}
