// The core's local API contract: typed errors, argument validation, the Ready/Advance cycle
// and restart from durable state. Behaviour between replicas is covered by testdata/*.txt.
import t from 'tap'
import { InvalidRequestError, NotLeaderError, ProposalDroppedError } from '../../src/core/errors.js'
import { decodeConfChange, decodeConfChangeResult, encodeConfChange } from '../../src/core/membership.js'
import { RaftCore, type Ready } from '../../src/core/raft.js'
import { ConfChangeType, EntryType, MemberRole, MessageType, type NodeId } from '../../src/core/types.js'
import { MemoryStorage } from '../../src/sim/storage.js'

const enc = new TextEncoder()
const three = { members: [1, 2, 3].map((id) => ({ id, role: MemberRole.Voter })) }

function single(): { core: RaftCore; storage: MemoryStorage } {
  const storage = new MemoryStorage({ members: [{ id: 1, role: MemberRole.Voter }] })
  const core = new RaftCore(
    { id: 1, electionTicks: 10, heartbeatTicks: 1, random: () => 0 },
    storage.restored(),
  )
  return { core, storage }
}

function drain(core: RaftCore, storage: MemoryStorage): Ready[] {
  const out: Ready[] = []
  while (core.hasReady()) {
    const rd = core.ready()
    storage.persist(rd)
    core.advance(rd)
    out.push(rd)
  }
  return out
}

t.test('config validation', async (t) => {
  const r = { hardState: { term: 0, vote: 0, commit: 0 }, entries: [], membership: three }
  t.throws(
    () => new RaftCore({ id: 0, electionTicks: 10, heartbeatTicks: 1, random: () => 0 }, r),
    InvalidRequestError,
  )
  t.throws(
    () => new RaftCore({ id: 1, electionTicks: 1, heartbeatTicks: 1, random: () => 0 }, r),
    InvalidRequestError,
  )
  t.throws(
    () =>
      new RaftCore(
        { id: 1, electionTicks: 10, heartbeatTicks: 1, random: () => 0, maxUncommittedBytes: 0 },
        r,
      ),
    InvalidRequestError,
  )
})

t.test('a follower refuses proposals with a typed error and a leader hint', async (t) => {
  const core = new RaftCore(
    { id: 2, electionTicks: 10, heartbeatTicks: 1, random: () => 0 },
    { hardState: { term: 0, vote: 0, commit: 0 }, entries: [], membership: three },
  )
  const err = t.throws(() => core.propose(EntryType.Normal, enc.encode('x'))) as unknown
  t.ok(err instanceof NotLeaderError)
  t.equal((err as NotLeaderError).leader, 0)
  core.step({
    type: MessageType.Heartbeat,
    from: 1,
    to: 2,
    term: 1,
    logIndex: 0,
    logTerm: 0,
    commit: 0,
    entries: [],
    reject: false,
    rejectHint: 0,
    transfer: false,
  })
  const err2 = t.throws(() => core.propose(EntryType.Normal, enc.encode('x'))) as unknown
  t.equal((err2 as NotLeaderError).leader, 1, 'hint names the leader it follows')
  t.throws(() => core.transferLeadership(1), NotLeaderError)
})

t.test('single voter: ready/advance cycle, commit only after the leader persisted', async (t) => {
  const { core, storage } = single()
  core.campaign()
  drain(core, storage)
  t.equal(core.role, 'leader')
  t.equal(core.commitIndex, 1, 'no-op committed')
  const idx = core.propose(EntryType.Normal, enc.encode('a'))
  t.equal(idx, 2)
  t.equal(core.commitIndex, 1, 'not committed before it is durable')
  const rd = core.ready()
  t.same(
    rd.entries.map((e) => e.index),
    [2],
  )
  t.same(rd.committed, [], 'nothing to apply before persisting')
  storage.persist(rd)
  core.advance(rd)
  t.equal(core.commitIndex, 2, 'self-ack at advance commits it')
  const rd2 = core.ready()
  t.same(
    rd2.committed.map((e) => e.index),
    [2],
  )
  t.equal(rd2.hardState?.commit, 2)
  storage.persist(rd2)
  core.advance(rd2)
  t.notOk(core.hasReady())
  t.throws(() => core.propose(EntryType.ConfChange, new Uint8Array(6)), InvalidRequestError)
})

t.test('compaction and restart from durable state', async (t) => {
  const { core, storage } = single()
  core.campaign()
  drain(core, storage)
  for (const v of ['a', 'b', 'c']) core.propose(EntryType.Normal, enc.encode(v))
  drain(core, storage)
  t.equal(core.appliedIndex, 4)
  t.throws(() => core.compact(5, new Uint8Array()), InvalidRequestError, 'not beyond applied')
  const snap = core.compact(3, enc.encode('state@3'))
  storage.compact(snap)
  t.equal(snap.meta.index, 3)
  t.equal(snap.meta.term, 1)
  t.same(snap.meta.membership, { members: [{ id: 1, role: MemberRole.Voter }] })
  t.throws(() => core.compact(2, new Uint8Array()), InvalidRequestError, 'already compacted')
  t.equal(core.termAt(2), undefined)
  const restarted = new RaftCore(
    { id: 1, electionTicks: 10, heartbeatTicks: 1, random: () => 0 },
    storage.restored(),
  )
  t.equal(restarted.term, 1)
  t.equal(restarted.commitIndex, 4)
  t.equal(restarted.lastIndex, 4)
  const rd = restarted.ready()
  t.same(
    rd.committed.map((e) => e.index),
    [4],
    'replays only what is after the snapshot',
  )
})

t.test('membership changes: validation and one at a time', async (t) => {
  const { core, storage } = single()
  t.throws(
    () => core.proposeConfChange({ type: ConfChangeType.AddMember, id: 2, role: MemberRole.Voter }),
    NotLeaderError,
  )
  core.campaign()
  drain(core, storage)
  t.throws(
    () => core.proposeConfChange({ type: ConfChangeType.RemoveMember, id: 1, role: 0 }),
    InvalidRequestError,
    'leader cannot remove itself',
  )
  t.throws(
    () => core.proposeConfChange({ type: ConfChangeType.RemoveMember, id: 9, role: 0 }),
    InvalidRequestError,
  )
  t.throws(
    () => core.proposeConfChange({ type: ConfChangeType.AddMember, id: 1, role: MemberRole.Voter }),
    InvalidRequestError,
  )
  core.proposeConfChange({ type: ConfChangeType.AddMember, id: 2, role: MemberRole.Learner })
  t.throws(
    () => core.proposeConfChange({ type: ConfChangeType.AddMember, id: 3, role: MemberRole.Learner }),
    ProposalDroppedError,
    'second change while the first is pending',
  )
  t.equal(core.membership.members.length, 2, 'takes effect when appended')
  drain(core, storage)
  // A voter that never answered (2 promoted) would leave {1,2} without an active quorum.
  t.throws(
    () => core.proposeConfChange({ type: ConfChangeType.AddMember, id: 2, role: MemberRole.Voter }),
    ProposalDroppedError,
    'strict reconfiguration check',
  )
})

t.test('ConfChange entry encoding round-trips and rejects garbage', async (t) => {
  const cc = { type: ConfChangeType.AddMember, id: 7, role: MemberRole.Witness }
  const m = {
    members: [
      { id: 1, role: MemberRole.Voter },
      { id: 7, role: MemberRole.Witness },
    ],
  }
  const b = encodeConfChange(cc, m)
  t.same(decodeConfChange(b), cc)
  t.same(decodeConfChangeResult(b), m)
  t.same(decodeConfChange(encodeConfChange(cc)), cc)
  t.equal(decodeConfChangeResult(encodeConfChange(cc)), undefined)
  t.equal(decodeConfChange(new Uint8Array([9, 0, 0, 0, 0, 1])), undefined)
  t.equal(decodeConfChange(new Uint8Array(3)), undefined)
  t.equal(decodeConfChangeResult(b.subarray(0, b.length - 1)), undefined)
})

t.test('step never throws on hostile messages', async (t) => {
  const core = new RaftCore(
    { id: 2, electionTicks: 10, heartbeatTicks: 1, random: () => 0.5 },
    { hardState: { term: 3, vote: 0, commit: 0 }, entries: [], membership: three },
  )
  const types = Object.values(MessageType).filter((v): v is MessageType => typeof v === 'number')
  let seed = 42
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed % n
  }
  for (let i = 0; i < 5000; i++) {
    const from = (rnd(5) + 1) as NodeId
    const idx = rnd(6)
    core.step({
      type: types[rnd(types.length)],
      from,
      to: 2,
      term: rnd(6),
      logIndex: idx,
      logTerm: rnd(6),
      commit: rnd(8),
      entries: rnd(2)
        ? [{ term: rnd(6), index: idx + 1, type: EntryType.Normal, data: new Uint8Array(1) }]
        : [],
      reject: rnd(2) === 1,
      rejectHint: rnd(6),
      transfer: rnd(2) === 1,
    })
    if (core.hasReady()) core.advance(core.ready())
    if (rnd(3) === 0) core.tick()
  }
  t.pass('survived 5000 random messages')
  t.ok(core.commitIndex <= core.lastIndex, 'commit never beyond the log')
})
