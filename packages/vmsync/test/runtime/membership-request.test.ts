// Operator membership requests: every malformed shape is refused with a message that says what is
// wrong, and well-formed ones are proposed on a real consensus group (a voter and a witness on
// loopback): a learner is added and removed; a follower and an unlisted peer are refused.
import { ConfChangeType, MemberRole } from '@plover/consensus'
import t from 'tap'
import {
  CONSENSUS_REMOVE_MEMBER,
  MembershipChangeRefused,
  MembershipRequestError,
  parseMembershipRequest,
  proposeMembership,
} from '../../src/runtime/membership-request.js'
import { consensusGroup, until } from '../fixtures/consensus-group.js'

t.test("the request's copy of a consensus enum value matches consensus", async (t) => {
  t.equal(CONSENSUS_REMOVE_MEMBER, ConfChangeType.RemoveMember)
})

t.test('well-formed requests parse', async (t) => {
  t.same(parseMembershipRequest({ remove: 1 }), { op: 'remove', id: 1 })
  t.same(parseMembershipRequest({ add: 4 }), { op: 'add', id: 4, learner: false })
  t.same(parseMembershipRequest({ add: 4, role: 'learner' }), { op: 'add', id: 4, learner: true })
})

t.test('malformed requests are refused, each with its reason', async (t) => {
  const cases: [unknown, RegExp][] = [
    [null, /must be a JSON object/],
    [[1], /must be a JSON object/],
    ['add 4', /must be a JSON object/],
    [{}, /exactly one of/],
    [{ add: 1, remove: 2 }, /exactly one of/],
    [{ add: '4' }, /positive integer, got "4"/],
    [{ remove: 0 }, /positive integer, got 0/],
    [{ add: 1.5 }, /positive integer/],
    [{ add: 4, role: 'voter' }, /may only be "learner"/],
    [{ remove: 4, role: 'learner' }, /only with "add"/],
    [{ add: 4, force: true }, /unknown field "force"/],
  ]
  for (const [body, why] of cases)
    t.throws(
      () => parseMembershipRequest(body),
      { name: MembershipRequestError.name, message: why },
      JSON.stringify(body),
    )
})

t.test('proposed on the leader; refused on a follower and for a peer not in the address book', async (t) => {
  const group = await consensusGroup(t)
  const running = {
    members: [
      { id: 1, role: MemberRole.Voter },
      { id: 3, role: MemberRole.Witness },
    ],
  }
  const [r1, r3] = await Promise.all([group.open(1, running), group.open(3, running)])
  await until('replica 1 leads', () => r1.role === 'leader' && r3.leader === 1)
  const book = (id: number) => (id === 1 || id === 2 ? 'voter' : id === 3 ? 'witness' : undefined)

  await t.rejects(proposeMembership(r3, { op: 'remove', id: 1 }, book), {
    name: MembershipChangeRefused.name,
    message: /not the leader \(leader is 1\)/,
  })
  await t.rejects(proposeMembership(r1, { op: 'add', id: 9, learner: true }, book), {
    name: MembershipChangeRefused.name,
    message: /unknown peer 9/,
  })

  // Retried: the core refuses a change until the leader committed in its term, and while one is
  // pending.
  const added = await retrying(() => proposeMembership(r1, { op: 'add', id: 2, learner: true }, book))
  t.ok(added > 0, `learner 2 added at index ${added}`)
  t.same(
    r1.membership.members.find((m) => m.id === 2),
    { id: 2, role: MemberRole.Learner },
    'replica 2 is a learner',
  )
  const removed = await retrying(() => proposeMembership(r1, { op: 'remove', id: 2 }, book))
  t.ok(removed > added, 'replica 2 removed after it')
  t.notOk(
    r1.membership.members.some((m) => m.id === 2),
    'replica 2 is no member',
  )
})

async function retrying<T>(f: () => Promise<T>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    try {
      return await f()
    } catch (err) {
      if (Date.now() > end) throw err
      await new Promise((r) => setTimeout(r, 20))
    }
  }
}
