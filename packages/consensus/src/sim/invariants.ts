// Raft's safety properties, checked on the live cluster after every simulation step:
// election safety, log matching, leader completeness, state-machine safety.
import type { RaftCore } from '../core/raft.js'
import type { Entry, NodeId } from '../core/types.js'

export class SafetyViolation extends Error {
  override readonly name = 'SafetyViolation'
}

function entryKey(e: Entry): string {
  return `${e.type}:${Buffer.from(e.data).toString('latin1')}`
}

export class SafetyChecker {
  private leaderOfTerm = new Map<number, NodeId>()
  /** `${index}/${term}` → content and the term of the entry before it (log matching, inductively). */
  private entries = new Map<string, { key: string; prevTerm: number }>()
  /** index → the entry every replica applied there (state-machine safety). */
  private applied = new Map<number, { term: number; key: string }>()
  /** Known commits: index, its entry's term, and the lowest term in which it was seen committed. */
  private commits: { index: number; term: number; commitTerm: number }[] = []
  private commitPos = new Map<number, number>()
  private commitSeen = new Map<NodeId, number>()
  private leaderCursor = new Map<string, number>()
  private logSig = new Map<NodeId, string>()

  /** Run all cheap checks on one live replica. */
  observe(core: RaftCore): void {
    if (core.status().violations > 0)
      throw new SafetyViolation(`${core.id} dropped a message that broke an invariant`)
    this.checkElection(core)
    this.checkLog(core)
    this.recordCommits(core)
    if (core.role === 'leader') this.checkLeaderCompleteness(core)
  }

  /** A replica applied entry e (in order). */
  observeApply(id: NodeId, e: Entry): void {
    const key = entryKey(e)
    const prev = this.applied.get(e.index)
    if (!prev) this.applied.set(e.index, { term: e.term, key })
    else if (prev.term !== e.term || prev.key !== key) {
      throw new SafetyViolation(
        `state-machine safety: ${id} applied ${e.term}/${e.index}, another replica applied ${prev.term}/${e.index}`,
      )
    }
  }

  private checkElection(core: RaftCore): void {
    if (core.role !== 'leader') return
    const other = this.leaderOfTerm.get(core.term)
    if (other === undefined) this.leaderOfTerm.set(core.term, core.id)
    else if (other !== core.id)
      throw new SafetyViolation(`election safety: ${other} and ${core.id} both lead term ${core.term}`)
  }

  private checkLog(core: RaftCore): void {
    const last = core.lastIndex
    const snap = core.snapshot?.meta.index ?? 0
    const sig = `${snap}/${last}/${core.termAt(last)}/${core.commitIndex}`
    if (this.logSig.get(core.id) === sig) return
    this.logSig.set(core.id, sig)
    let prevTerm = core.termAt(snap) ?? 0
    for (const e of core.entries(snap + 1, last + 1)) {
      const k = `${e.index}/${e.term}`
      const key = entryKey(e)
      const seen = this.entries.get(k)
      if (!seen) this.entries.set(k, { key, prevTerm })
      else if (seen.key !== key || seen.prevTerm !== prevTerm) {
        throw new SafetyViolation(
          `log matching: ${core.id} holds a different ${k} (or a different entry before it)`,
        )
      }
      prevTerm = e.term
    }
  }

  private recordCommits(core: RaftCore): void {
    const from = Math.max(this.commitSeen.get(core.id) ?? 0, core.snapshot?.meta.index ?? 0)
    for (let i = from + 1; i <= core.commitIndex; i++) {
      const term = core.termAt(i)
      if (term === undefined) continue
      const pos = this.commitPos.get(i)
      if (pos === undefined) {
        this.commitPos.set(i, this.commits.length)
        this.commits.push({ index: i, term, commitTerm: core.term })
      } else {
        const c = this.commits[pos]
        if (c.term !== term)
          throw new SafetyViolation(`commit safety: ${core.id} committed ${term}/${i}, others ${c.term}/${i}`)
        c.commitTerm = Math.min(c.commitTerm, core.term)
      }
    }
    this.commitSeen.set(core.id, Math.max(from, core.commitIndex))
  }

  /** Every entry committed in an earlier term is in this leader's log (Raft §5.4). */
  private checkLeaderCompleteness(core: RaftCore): void {
    const cursorKey = `${core.id}/${core.term}`
    const start = this.leaderCursor.get(cursorKey) ?? 0
    const snap = core.snapshot?.meta.index ?? 0
    for (let k = start; k < this.commits.length; k++) {
      const c = this.commits[k]
      if (c.commitTerm >= core.term || c.index <= snap) continue
      const t = core.termAt(c.index)
      if (t !== c.term) {
        throw new SafetyViolation(
          `leader completeness: leader ${core.id} of term ${core.term} lacks committed ${c.term}/${c.index}`,
        )
      }
    }
    this.leaderCursor.set(cursorKey, this.commits.length)
  }
}
