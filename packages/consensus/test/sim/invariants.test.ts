// The simulation's safety checker must itself be able to fail: feed it replicas that break
// each property and check that it says so.
import t from 'tap'
import type { RaftCore } from '../../src/core/raft.js'
import { type Entry, EntryType } from '../../src/core/types.js'
import { SafetyChecker, SafetyViolation } from '../../src/sim/invariants.js'

const e = (term: number, index: number, data = `${term}/${index}`): Entry => ({
  term,
  index,
  type: EntryType.Normal,
  data: new TextEncoder().encode(data),
})

/** Just what SafetyChecker reads from a RaftCore. */
function fake(id: number, role: string, term: number, log: Entry[], commit: number): RaftCore {
  return {
    id,
    role,
    term,
    commitIndex: commit,
    lastIndex: log.length,
    snapshot: undefined,
    status: () => ({ violations: 0 }),
    termAt: (i: number) => (i === 0 ? 0 : log[i - 1]?.term),
    entries: (lo: number, hi: number) => log.slice(Math.max(lo, 1) - 1, hi - 1),
  } as unknown as RaftCore
}

t.test('consistent replicas pass', async (t) => {
  const c = new SafetyChecker()
  const log = [e(1, 1), e(1, 2), e(2, 3)]
  c.observe(fake(1, 'leader', 2, log, 3))
  c.observe(fake(2, 'follower', 2, log.slice(0, 2), 2))
  c.observeApply(1, log[0])
  c.observeApply(2, log[0])
  t.pass()
})

t.test('election safety', async (t) => {
  const c = new SafetyChecker()
  c.observe(fake(1, 'leader', 3, [], 0))
  t.throws(() => c.observe(fake(2, 'leader', 3, [], 0)), SafetyViolation)
})

t.test('log matching: same index and term, different content', async (t) => {
  const c = new SafetyChecker()
  c.observe(fake(1, 'follower', 1, [e(1, 1, 'a')], 0))
  t.throws(() => c.observe(fake(2, 'follower', 1, [e(1, 1, 'b')], 0)), /log matching/)
})

t.test('log matching: same entry, different history before it', async (t) => {
  const c = new SafetyChecker()
  c.observe(fake(1, 'follower', 3, [e(1, 1), e(3, 2)], 0))
  t.throws(() => c.observe(fake(2, 'follower', 3, [e(2, 1), e(3, 2)], 0)), /log matching/)
})

t.test('leader completeness', async (t) => {
  const c = new SafetyChecker()
  c.observe(fake(1, 'leader', 1, [e(1, 1), e(1, 2)], 2))
  t.throws(() => c.observe(fake(2, 'leader', 2, [e(1, 1)], 1)), /leader completeness/)
})

t.test('state-machine safety', async (t) => {
  const c = new SafetyChecker()
  c.observeApply(1, e(1, 1, 'x'))
  t.throws(() => c.observeApply(2, e(1, 1, 'y')), /state-machine safety/)
  t.throws(() => c.observeApply(2, e(2, 1, 'x')), /state-machine safety/)
})
