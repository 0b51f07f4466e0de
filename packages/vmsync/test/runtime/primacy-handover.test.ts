// A planned switchover on real parts: a consensus group of two voters and a witness (WALs,
// loopback sockets), SimulatedVm replicas under PrimacyGate on both voters, SyncLinks between
// them. Before the backup's sync protects the outputs the primary refuses to hand over; after it,
// the backup leads and its VM is primary, and the old primary's VM is its backup.
import type { NodeId, Replica } from '@plover/consensus'
import t from 'tap'
import { PageHasher } from '../../src/hashing/index.js'
import type { VmReplica } from '../../src/protocol/vm-replica.js'
import { handOverPrimacy } from '../../src/runtime/primacy-handover.js'
import { encodeKvRequest, KvOp } from '../../src/simulated/index.js'
import { consensusGroup, until } from '../fixtures/consensus-group.js'
import { memberLinks, simulatedMember } from '../fixtures/simulated-member.js'

t.test('the primary hands leadership to its synced backup, whose VM becomes primary', async (t) => {
  const group = await consensusGroup(t, 3, 2)
  const syncPorts = group.extra
  const hasher = new PageHasher({ threads: 1 })
  t.teardown(() => hasher.close())
  const replicas = new Map<NodeId, Replica>()
  const backupOf = new Map<NodeId, number>()
  const vms = new Map<NodeId, VmReplica>()
  replicas.set(3, await group.open(3))
  for (const id of [1, 2] as const) {
    const replica = await group.open(id)
    replicas.set(id, replica)
    // In the same turn as open: the log adapter and the gate must see every applied record.
    const { vr, resumed } = simulatedMember(t, replica, hasher, { seed: 7, gate: true })
    await resumed
    await memberLinks(t, { id, replica, vr, ports: syncPorts, onBackup: (peer) => backupOf.set(id, peer) })
    vms.set(id, vr)
  }
  // A fresh log: the first leader's VM is promoted once its no-op applies; it serves an input.
  const p = await until('a primary', () => [1, 2].find((id) => vms.get(id)!.role === 'primary'))
  const b = p === 1 ? 2 : 1
  const [r1, r2] = [replicas.get(p)!, replicas.get(b)!]
  const [vm1, vm2] = [vms.get(p)!, vms.get(b)!]
  vm1.pushInput(encodeKvRequest({ clientId: 1, requestId: 1, op: KvOp.Set, key: 'k', value: 'v' }))

  const early = await handOverPrimacy({ replica: r2, vm: vm2, backupId: p })
  t.same(early, { skipped: 'not the leader' }, 'a follower has nothing to hand over')
  const backupId = await until('the backup attached', () => backupOf.get(p))
  t.equal(backupId, b, 'the sync link named the backup')
  if (!vm1.guard.isProtected) {
    const refused = await handOverPrimacy({ replica: r1, vm: vm1, backupId })
    t.match(refused, { skipped: /has not protected the outputs/ }, 'no hand-over to an unsynced backup')
    t.equal(r1.role, 'leader', 'and leadership stayed')
  }
  await vm1.requestSync()
  await until('the outputs protected', () => vm1.guard.isProtected)
  t.equal(vm2.trusted, true, "the backup's VM is trusted after its sync")

  const termBefore = r1.term
  const result = await handOverPrimacy({ replica: r1, vm: vm1, backupId })
  t.same(result, { handedTo: b, term: termBefore + 1 }, `replica ${b} leads in the next term`)
  await until('the gates act', () => vm2.role === 'primary' && vm1.role === 'backup')
  t.pass(`replica ${b}'s VM is primary; replica ${p}'s is its backup`)
  await until('the witness follows the new leader', () => replicas.get(3)!.leader === b)
  t.equal(r1.role, 'follower')
})

t.test('a transfer the core refuses is reported, not thrown', async (t) => {
  const calls: number[] = []
  const result = await handOverPrimacy({
    replica: {
      role: 'leader',
      leader: 1,
      term: 3,
      transferLeadership: (to: number) => {
        calls.push(to)
        throw new Error(`${to} is not a voter that may lead`)
      },
      on: () => {},
      off: () => {},
    } as never,
    vm: { role: 'primary', guard: { isProtected: true } } as never,
    backupId: 4,
  })
  t.same(calls, [4])
  t.same(result, { skipped: 'transfer refused: 4 is not a voter that may lead' })
})

t.test('a backup that never takes over: the hand-over gives up after timeoutMs', async (t) => {
  const result = await handOverPrimacy({
    replica: {
      role: 'leader',
      leader: 1,
      term: 3,
      transferLeadership: () => {},
      on: () => {},
      off: () => {},
    } as never,
    vm: { role: 'primary', guard: { isProtected: true } } as never,
    backupId: 2,
    timeoutMs: 50,
  })
  t.same(result, { skipped: 'backup 2 did not take over within 50 ms' })
})
