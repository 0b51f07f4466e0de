// The in-memory view of the replicated log: a snapshot (the compaction point) followed by
// entries. Tracks which prefix is known durable (stabled), committed and applied. Pure data
// structure; the core decides when to call what.
import { ProtocolViolationError } from './errors.js'
import { type Entry, EntryType, type Snapshot } from './types.js'

export class RaftLog {
  /** Latest snapshot: received from a leader or produced by compact(). Entries start after it. */
  snapshot: Snapshot | undefined
  /** A snapshot received from the leader that the app has not yet persisted/installed. */
  pendingSnapshot: Snapshot | undefined
  offset: number
  offsetTerm: number
  stabled: number
  committed: number
  applied: number
  /** Bumped whenever a ConfChange entry is added or removed, so membership can be cached. */
  confVersion = 0
  private ents: Entry[]

  constructor(snapshot: Snapshot | undefined, entries: readonly Entry[], commit: number, applied: number) {
    this.snapshot = snapshot
    this.offset = snapshot?.meta.index ?? 0
    this.offsetTerm = snapshot?.meta.term ?? 0
    // Entries at or below the snapshot are redundant; a gap after it would be corruption.
    const kept = entries.filter((e) => e.index > this.offset)
    kept.forEach((e, i) => {
      if (e.index !== this.offset + 1 + i) throw new Error(`restored log has a gap at index ${e.index}`)
    })
    this.ents = kept
    this.stabled = this.lastIndex()
    this.committed = Math.max(this.offset, Math.min(commit, this.lastIndex()))
    this.applied = Math.max(this.offset, Math.min(applied, this.committed))
  }

  firstIndex(): number {
    return this.offset + 1
  }

  lastIndex(): number {
    return this.offset + this.ents.length
  }

  /** Term at index, or undefined when compacted away or beyond the end. */
  term(i: number): number | undefined {
    if (i === this.offset) return this.offsetTerm
    if (i < this.offset || i > this.lastIndex()) return undefined
    return this.ents[i - this.offset - 1].term
  }

  lastTerm(): number {
    return this.term(this.lastIndex()) ?? 0
  }

  entry(i: number): Entry | undefined {
    if (i <= this.offset || i > this.lastIndex()) return undefined
    return this.ents[i - this.offset - 1]
  }

  matchTerm(i: number, t: number): boolean {
    return this.term(i) === t
  }

  /** Raft §5.4.1: is a log ending at (index, term) at least as up to date as ours? */
  isUpToDate(index: number, term: number): boolean {
    const lt = this.lastTerm()
    return term > lt || (term === lt && index >= this.lastIndex())
  }

  /** Entries in [lo, hi), capped by count and bytes (always at least one if any exist). */
  slice(
    lo: number,
    hi: number,
    maxCount = Number.POSITIVE_INFINITY,
    maxBytes = Number.POSITIVE_INFINITY,
  ): Entry[] {
    lo = Math.max(lo, this.firstIndex())
    hi = Math.min(hi, this.lastIndex() + 1)
    const out: Entry[] = []
    let bytes = 0
    for (let i = lo; i < hi && out.length < maxCount; i++) {
      const e = this.ents[i - this.offset - 1]
      bytes += e.data.length + 24
      if (out.length > 0 && bytes > maxBytes) break
      out.push(e)
    }
    return out
  }

  /**
   * Largest index <= index whose term is <= term (etcd's findConflictByTerm): the best guess of
   * where two logs may agree. Returns the offset when it runs into the compaction point.
   */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex())
    while (i > this.offset) {
      const t = this.term(i)
      if (t !== undefined && t <= term) return i
      i--
    }
    return this.offset
  }

  /**
   * Follower append (Raft AppendEntries receiver): if our log holds (prevIndex, prevTerm), add the
   * entries, truncating only at the first real conflict (a stale or duplicated message must never
   * drop entries we already have), and advance commit. Returns the last new index, or undefined.
   */
  maybeAppend(
    prevIndex: number,
    prevTerm: number,
    commit: number,
    ents: readonly Entry[],
  ): number | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined
    const lastNew = prevIndex + ents.length
    let k = 0
    while (k < ents.length) {
      const e = ents[k]
      if (e.index <= this.offset) {
        k++
        continue
      }
      if (!this.matchTerm(e.index, e.term)) break
      k++
    }
    if (k < ents.length) {
      const first = ents[k].index
      // A committed entry never conflicts (log matching + leader completeness); if it does,
      // something upstream is broken and truncating would silently lose data.
      if (first <= this.committed) throw new ProtocolViolationError(`conflict at committed index ${first}`)
      this.append(ents.slice(k))
    }
    this.commitTo(Math.min(commit, lastNew))
    return lastNew
  }

  /** Appends entries whose first index is in [firstIndex, last+1], truncating any suffix. */
  append(ents: readonly Entry[]): void {
    if (ents.length === 0) return
    const first = ents[0].index
    if (first <= this.offset || first > this.lastIndex() + 1) {
      throw new Error(`append at ${first} outside (${this.offset}, ${this.lastIndex() + 1}]`)
    }
    if (first <= this.lastIndex()) {
      const dropped = this.ents.splice(first - this.offset - 1)
      if (dropped.some((e) => e.type === EntryType.ConfChange)) this.confVersion++
      if (this.stabled >= first) this.stabled = first - 1
    }
    for (const e of ents) {
      this.ents.push(e)
      if (e.type === EntryType.ConfChange) this.confVersion++
    }
  }

  commitTo(i: number): boolean {
    const c = Math.min(i, this.lastIndex())
    if (c <= this.committed) return false
    this.committed = c
    return true
  }

  unstableEntries(): Entry[] {
    return this.ents.slice(this.stabled - this.offset)
  }

  stableTo(i: number, t: number): void {
    if (i > this.stabled && this.matchTerm(i, t)) this.stabled = i
  }

  /** Committed entries not yet handed to the app. */
  nextCommitted(): Entry[] {
    const from = Math.max(this.applied, this.pendingSnapshot?.meta.index ?? 0, this.offset) + 1
    return this.slice(from, this.committed + 1)
  }

  hasNextCommitted(): boolean {
    return this.committed > Math.max(this.applied, this.pendingSnapshot?.meta.index ?? 0, this.offset)
  }

  /** Install a snapshot from the leader: everything we had is replaced. */
  restore(s: Snapshot): void {
    this.snapshot = s
    this.pendingSnapshot = s
    this.offset = s.meta.index
    this.offsetTerm = s.meta.term
    this.ents = []
    this.confVersion++
    this.stabled = s.meta.index
    this.committed = s.meta.index
  }

  /** The app compacted up to s.meta.index (<= applied): drop the prefix, remember the snapshot. */
  compact(s: Snapshot): void {
    const i = s.meta.index
    const dropped = this.ents.splice(0, i - this.offset)
    if (dropped.some((e) => e.type === EntryType.ConfChange)) this.confVersion++
    this.offset = i
    this.offsetTerm = s.meta.term
    this.snapshot = s
  }

  /** ConfChange entries currently in the log (after the snapshot), in order. */
  confEntries(upTo = this.lastIndex()): Entry[] {
    const out: Entry[] = []
    for (const e of this.ents) {
      if (e.index > upTo) break
      if (e.type === EntryType.ConfChange) out.push(e)
    }
    return out
  }
}
