// vmBackupCaughtUp on a real consensus group (two voters and a witness): true on the leader while
// the other VM voter keeps up, false on a follower, and false once only the witness keeps up —
// a witness runs no VM, so it is never the backup a sync waits for.
import { EntryType, MemberRole } from '@plover/consensus'
import t from 'tap'
import { CONSENSUS_WITNESS_ROLE, vmBackupCaughtUp } from '../../src/runtime/backup-progress.js'
import { consensusGroup, until } from '../fixtures/consensus-group.js'

t.test("the constant is consensus's MemberRole.Witness", async (t) => {
  t.equal(CONSENSUS_WITNESS_ROLE, MemberRole.Witness)
})

t.test('caught up: the other VM voter, never the witness', async (t) => {
  const group = await consensusGroup(t)
  const replicas = await Promise.all(group.ids.map((id) => group.open(id)))
  const leader = await until('a leader', () => replicas.find((r) => r.role === 'leader'))
  const other = replicas.find((r) => r !== leader && r.id !== 3)!
  for (let i = 0; i < 20; i++) await leader.propose(EntryType.Normal, new Uint8Array(8))
  await until('the other voter replicating', () => (vmBackupCaughtUp(leader, 5) ? true : undefined))
  t.ok(vmBackupCaughtUp(leader, 5), 'leader: the other VM voter is within 5 entries')
  t.notOk(vmBackupCaughtUp(other), 'a follower never says so')

  // The other voter goes away; leader and witness go on committing past the slack.
  await other.close()
  for (let i = 0; i < 20; i++) await leader.propose(EntryType.Normal, new Uint8Array(8))
  const st = leader.status()
  t.ok(
    st.progress.some((p) => p.id === 3 && p.match >= st.lastIndex - 5),
    'the witness is caught up',
  )
  t.notOk(vmBackupCaughtUp(leader, 5), 'but it is no VM backup: not caught up')
})
