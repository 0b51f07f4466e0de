import type { Entry, HardState, Snapshot } from '../core/types.js'
import { StorageError } from './errors.js'
import { RecordType, type WalRecord } from './record.js'

// Rebuilds the log from WAL records in write order. Pure (no I/O) so the rules are testable:
// - Entry i replaces every entry >= i (the core overwrote a conflicting suffix).
// - SnapshotInstall voids every earlier entry (the leader's snapshot replaced the log).
// - Latest HardState wins.
// finish() then keeps only entries after the snapshot and checks they are contiguous.

const EMPTY_HS: HardState = { term: 0, vote: 0, commit: 0 }

export class LogReplay {
  hardState: HardState = EMPTY_HS
  private entries: Entry[] = []
  /** Highest SnapshotInstall seen (its snapshot file must exist). */
  installed: { index: number; term: number } | undefined

  apply(rec: WalRecord): void {
    switch (rec.type) {
      case RecordType.HardState:
        this.hardState = rec.hardState
        return
      case RecordType.SnapshotInstall:
        this.entries = []
        this.installed = { index: rec.index, term: rec.term }
        return
      case RecordType.Entry: {
        const e = rec.entry
        const es = this.entries
        if (es.length > 0) {
          const first = es[0].index
          const last = es[es.length - 1].index
          if (e.index <= first) es.length = 0
          else if (e.index <= last) es.length = e.index - first
          else if (e.index > last + 1) {
            throw new StorageError('corrupt', `WAL has a gap: entry ${e.index} after ${last}`)
          }
        }
        es.push(e)
        return
      }
    }
  }

  finish(snapshot: Snapshot | undefined): Entry[] {
    const snapIndex = snapshot?.meta.index ?? 0
    if (this.installed && this.installed.index > snapIndex) {
      throw new StorageError(
        'corrupt',
        `WAL records a snapshot install at ${this.installed.index} but the newest snapshot file is at ${snapIndex}`,
      )
    }
    let es = this.entries
    if (snapshot) {
      // etcd's restore rule: a log whose entry at the snapshot index has another term diverged
      // from the snapshot's history, so nothing after it can be trusted.
      const at = es.find((e) => e.index === snapIndex)
      if (at && at.term !== snapshot.meta.term) es = []
      es = es.filter((e) => e.index > snapIndex)
    }
    // Contiguity: from the snapshot (or from wherever the log starts, without one).
    const start = snapshot ? snapIndex + 1 : es.length > 0 ? es[0].index : 1
    for (let i = 0; i < es.length; i++) {
      if (es[i].index !== start + i) {
        throw new StorageError('corrupt', `WAL has a gap: expected entry ${start + i}, found ${es[i].index}`)
      }
    }
    return es
  }
}
