// LearnerPromotion on real parts: a consensus group of a voter (the primary) and a witness, a
// spare that joins as a learner, SimulatedVm replicas on both VM members, SyncLinks over loopback
// (the spare names itself in its first frame). Once the spare's full sync protects the primary's
// outputs, the leader makes it a voter by itself.
import { ConfChangeType, EntryType, MemberRole, type NodeId, type Replica } from '@plover/consensus'
import t from 'tap'
import { PageHasher } from '../../src/hashing/index.js'
import {
  CONSENSUS_ADD_MEMBER,
  CONSENSUS_CONF_CHANGE_ENTRY,
  CONSENSUS_LEARNER_ROLE,
  LearnerPromotion,
} from '../../src/runtime/learner-promotion.js'
import { consensusGroup, until } from '../fixtures/consensus-group.js'
import { memberLinks, simulatedMember } from '../fixtures/simulated-member.js'

t.test("the promotion's copies of consensus enum values match consensus", async (t) => {
  t.equal(CONSENSUS_ADD_MEMBER, ConfChangeType.AddMember)
  t.equal(CONSENSUS_LEARNER_ROLE, MemberRole.Learner)
  t.equal(CONSENSUS_CONF_CHANGE_ENTRY, EntryType.ConfChange)
})

t.test('a learner whose full sync protected the primary becomes a voter', async (t) => {
  const group = await consensusGroup(t, 3, 2)
  const syncPorts = group.extra
  const hasher = new PageHasher({ threads: 1 })
  t.teardown(() => hasher.close())
  const open = group.open
  const running = {
    members: [
      { id: 1, role: MemberRole.Voter },
      { id: 3, role: MemberRole.Witness },
    ],
  }
  const [r1, r3] = await Promise.all([open(1, running), open(3, running)])
  await until('replica 1 leads', () => r1.role === 'leader')

  // VM replicas: the primary on 1 (a fresh cluster's leader), the spare's backup on 2.
  const vmOn = async (id: NodeId, replica: Replica, role: 'primary' | 'backup') => {
    const m = simulatedMember(t, replica, hasher, { seed: id, role })
    await m.resumed
    return m
  }
  const primary = await vmOn(1, r1, 'primary')
  let backupId: number | undefined
  const onBackup = (peer: number) => {
    backupId = peer
  }
  await memberLinks(t, { id: 1, replica: r1, vr: primary.vr, ports: syncPorts, onBackup })
  const promotion = new LearnerPromotion({ replica: r1, vm: primary.vr, backupId: () => backupId })
  t.teardown(() => promotion.close())
  const promoted: number[] = []
  promotion.on('promoted', (id) => promoted.push(id))

  // The spare: started as a learner, then added as one (the operator's only step).
  const joining = { members: [...running.members, { id: 2, role: MemberRole.Learner }] }
  const r2 = await open(2, joining)
  const spare = await vmOn(2, r2, 'backup')
  await memberLinks(t, { id: 2, replica: r2, vr: spare.vr, ports: syncPorts })
  await r1.proposeConfChange({ type: ConfChangeType.AddMember, id: 2, role: MemberRole.Learner })
  await until('the primary knows its backup', () => backupId)
  t.equal(backupId, 2, 'the sync link named the spare')

  // Syncs, as the idle monitor would ask for them, until the spare is a voter.
  const ticker = setInterval(() => primary.vr.requestSync().catch(() => {}), 100)
  t.teardown(() => clearInterval(ticker))
  await until('the spare promoted', () => promoted.length > 0)
  clearInterval(ticker)
  t.same(promoted, [2], 'promoted once, the spare')
  t.ok(primary.vr.guard.isProtected, 'after its full sync protected the outputs')
  const roleOn = (r: Replica) => r.membership.members.find((m) => m.id === 2)?.role
  await until('every member applied the change', () =>
    [r1, r2, r3].every((r) => roleOn(r) === MemberRole.Voter) ? true : undefined,
  )
  t.pass('replica 2 is a voter on every member')
  t.equal(spare.vr.trusted, true, 'and its VM is trusted')
})
