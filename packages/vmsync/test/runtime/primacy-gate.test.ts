// A leader's VM may be primary only if it is trusted, or if the log never carried an input.
// Otherwise it must not serve and must hand leadership to another VM voter. Scripted against a
// stand-in replica first (every branch, fast), then on a real three-member consensus group
// (two voters with SimulatedVm replicas, one witness; real WALs and loopback sockets).
import { EntryType, MemberRole, type NodeId, type Replica } from '@plover/consensus'
import { EventEmitter } from 'eventemitter3'
import t, { type Test } from 'tap'
import { PageHasher } from '../../src/hashing/index.js'
import { LogRecordKind, type OrderedLog, type OrderedLogEvents } from '../../src/log/ordered-log.js'
import type { ReplicaRole, VmReplica } from '../../src/protocol/vm-replica.js'
import {
  CONSENSUS_EMPTY_ENTRY,
  CONSENSUS_VOTER_ROLE,
  PrimacyGate,
  type PrimacyReplica,
  type PrimacyVm,
} from '../../src/runtime/primacy-gate.js'
import { encodeKvRequest, KvOp } from '../../src/simulated/index.js'
import { consensusGroup, until } from '../fixtures/consensus-group.js'
import { simulatedMember } from '../fixtures/simulated-member.js'

t.test("the gate's copies of consensus enum values match consensus", async (t) => {
  t.equal(CONSENSUS_EMPTY_ENTRY, EntryType.Empty)
  t.equal(CONSENSUS_VOTER_ROLE, MemberRole.Voter)
})

/** A consensus replica's events, and the vmsync log records the adapter would derive from them. */
class StandInReplica extends EventEmitter {
  readonly log = new EventEmitter<OrderedLogEvents>() as OrderedLog & EventEmitter<OrderedLogEvents>
  id = 2
  role = 'leader'
  term = 3
  transfers: number[] = []
  membership = {
    members: [
      { id: 2, role: MemberRole.Voter },
      { id: 3, role: MemberRole.Witness },
      { id: 4, role: MemberRole.Voter },
    ],
  }
  transferLeadership(to: number): void {
    this.transfers.push(to)
  }
  apply(type: EntryType, term = this.term): void {
    const data = new Uint8Array(0)
    if (type === EntryType.Normal) this.log.emit('apply', { index: 0, kind: LogRecordKind.Input, data })
    this.emit('apply', { type, term, index: 0, data })
  }
  snapshot(index: number): void {
    this.log.emit('gap', index)
  }
  lead(isLeader: boolean): void {
    Object.defineProperty(this.log, 'isLeader', { value: isLeader, configurable: true })
    this.log.emit('leadership', isLeader)
  }
}

function scripted(t: Test, trusted: boolean) {
  const replica = new StandInReplica()
  Object.defineProperty(replica.log, 'isLeader', { value: false, configurable: true })
  const promotions: (boolean | undefined)[] = []
  let demotions = 0
  const vm: PrimacyVm & { role: ReplicaRole } = {
    role: 'backup',
    trusted,
    promote(o = {}) {
      this.role = 'primary'
      promotions.push(o.trusted)
    },
    demote() {
      this.role = 'backup'
      demotions++
    },
  }
  const gate = new PrimacyGate({
    replica: replica as unknown as PrimacyReplica,
    log: replica.log,
    vm,
    transferEveryMs: 20,
  })
  const events: string[] = []
  gate.on('refused', () => events.push('refused'))
  gate.on('transfer', (to) => events.push(`transfer ${to}`))
  gate.on('transfer-failed', (why) => events.push(`failed: ${why}`))
  t.teardown(() => gate.close())
  return { replica, gate, vm, promotions, events, demotions: () => demotions }
}

t.test('a fresh cluster: the first leader is primary once its no-op applies', async (t) => {
  const { replica, promotions } = scripted(t, false)
  replica.lead(true)
  t.same(promotions, [], 'waits for its no-op')
  replica.apply(EntryType.Empty)
  t.same(promotions, [true], 'promoted, vouching for the never-synced VM: no input was ever committed')
  t.same(replica.transfers, [])
})

t.test('an untrusted VM in a log with inputs refuses and hands leadership over, repeatedly', async (t) => {
  const { replica, gate, promotions, events } = scripted(t, false)
  replica.apply(EntryType.Normal, 1)
  replica.apply(EntryType.Empty, 1)
  replica.lead(true)
  replica.apply(EntryType.Empty)
  t.same(promotions, [], 'never promoted')
  t.same(replica.transfers, [4], 'leadership offered to the other VM voter, not the witness')
  t.same(events, ['refused', 'transfer 4'])
  t.ok(gate.refusing)
  await new Promise((r) => setTimeout(r, 70))
  t.ok(replica.transfers.length >= 2, 'offered again while still leader')
  replica.role = 'follower'
  replica.lead(false)
  t.notOk(gate.refusing, 'stops once no longer leader')
  const n = replica.transfers.length
  await new Promise((r) => setTimeout(r, 50))
  t.equal(replica.transfers.length, n)
})

t.test('no other VM voter: the refusal says so', async (t) => {
  const { replica, events } = scripted(t, false)
  replica.membership.members = replica.membership.members.filter((m) => m.id !== 4)
  replica.apply(EntryType.Normal, 1)
  replica.lead(true)
  replica.apply(EntryType.Empty)
  t.same(events, ['refused', 'failed: no other VM voter to hand leadership to'])
})

t.test('a log that starts with a snapshot counts as having carried inputs', async (t) => {
  // E.g. every replica restarted from a compacted WAL whose remaining entries hold no input.
  const { replica, promotions, events } = scripted(t, false)
  replica.snapshot(500)
  replica.apply(EntryType.SyncDone, 1)
  replica.lead(true)
  replica.apply(EntryType.Empty)
  t.same(promotions, [], 'the fresh VM is not promoted')
  t.same(replica.transfers, [4], 'leadership is handed over instead')
  t.same(events.slice(0, 1), ['refused'])
})

t.test('a trusted backup is promoted at once; losing leadership demotes', async (t) => {
  const { replica, promotions, demotions, vm } = scripted(t, true)
  replica.apply(EntryType.Normal, 1)
  replica.lead(true)
  t.same(promotions, [false], 'trusted on its own: nothing to vouch for')
  t.equal(vm.role, 'primary')
  replica.lead(false)
  t.equal(demotions(), 1)
  t.equal(vm.role, 'backup')
})

t.test('leadership gained after its no-op was already applied is not stuck', async (t) => {
  const { replica, promotions } = scripted(t, false)
  replica.apply(EntryType.Empty)
  replica.lead(true)
  t.same(promotions, [true])
})

interface Member {
  readonly id: NodeId
  readonly replica: Replica
  readonly vr?: VmReplica
  readonly gate?: PrimacyGate
  readonly roles: ReplicaRole[]
  readonly events: string[]
}

t.test('on real consensus: an untrusted leader hands over to the trusted VM', async (t) => {
  const group = await consensusGroup(t)
  const hasher = new PageHasher({ threads: 1 })
  t.teardown(() => hasher.close())
  const open = async (id: NodeId): Promise<Member> => {
    const replica = await group.open(id)
    const roles: ReplicaRole[] = []
    const events: string[] = []
    if (id === 3) return { id, replica, roles, events }
    // In the turn the replica opened in, as a runtime does: no record missed.
    const { vr, gate, resumed } = simulatedMember(t, replica, hasher, { seed: id, gate: true })
    vr.on('role', (r) => roles.push(r))
    gate!.on('promoted', (p) => events.push(`promoted${p.freshLog ? ' (fresh log)' : ''}`))
    gate!.on('demoted', () => events.push('demoted'))
    gate!.on('refused', () => events.push('refused'))
    gate!.on('transfer', (to) => events.push(`transfer ${to}`))
    await resumed
    return { id, replica, vr, gate, roles, events }
  }
  const members = await Promise.all(group.ids.map(open))
  const vmMembers = members.filter((m) => m.vr)

  // A brand-new cluster: whichever voter leads serves from its fresh VM.
  const first = await until('a primary', () => vmMembers.find((m) => m.vr!.role === 'primary'))
  t.same(first.events, ['promoted (fresh log)'])
  const other = vmMembers.find((m) => m !== first)!
  t.equal(other.vr!.trusted, false, 'the other VM was never synced')

  // An input is committed; the other voter applies (skips) it: its VM is now behind for good.
  first.vr!.pushInput(encodeKvRequest({ op: KvOp.Set, clientId: 1, requestId: 1, key: 'k', value: 'v' }))
  await until('the other voter saw the input', () => other.gate!.carriedInput)

  first.replica.transferLeadership(other.id)
  await until('the other voter led', () => other.events.includes('refused'))
  t.same(other.events.slice(0, 2), ['refused', `transfer ${first.id}`], 'refused, handed back')
  await until('the trusted VM leads and serves again', () =>
    first.replica.role === 'leader' && first.vr!.role === 'primary' ? true : undefined,
  )
  t.same(other.roles, [], 'the untrusted VM was never primary')
  t.same(first.events, ['promoted (fresh log)', 'demoted', 'promoted'], 'demoted trusted, promoted again')
  t.equal(first.vr!.trusted, true)
})
