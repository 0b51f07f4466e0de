// A leader's VM may be primary only if it is trusted, or if the log never carried an input.
// Otherwise it must not serve and must hand leadership to another VM voter.
import { EntryType, MemberRole, type Replica } from '@plover/consensus'
import { InputHistory, LogRecordKind, type OrderedLogEvents } from '@plover/vmsync'
import { EventEmitter } from 'eventemitter3'
import t from 'tap'
import { PrimacyGate } from '../src/replica/primacy.js'
import type { VmStack } from '../src/replica/vm-stack.js'
import { jsonLogger } from '../src/runtime/logger.js'

/** A consensus replica's events, and the vmsync log records the adapter would derive from them. */
class FakeReplica extends EventEmitter {
  readonly log = new EventEmitter<OrderedLogEvents>()
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
}

function setup(trusted: boolean) {
  const replica = new FakeReplica()
  const calls: boolean[] = []
  const freshLog: (boolean | undefined)[] = []
  const vm = {
    trusted,
    setLeader: (l: boolean, o?: { freshLog?: boolean }) => {
      calls.push(l)
      if (l) freshLog.push(o?.freshLog)
    },
  } as unknown as VmStack
  const lines: string[] = []
  const history = new InputHistory(replica.log)
  const gate = new PrimacyGate(
    replica as unknown as Replica,
    history,
    jsonLogger({}, { write: (l) => lines.push(l) }),
  )
  gate.attach(vm)
  t.teardown(() => gate.close())
  return { replica, calls, gate, lines, freshLog }
}

t.test('a fresh cluster: the first leader is primary once its no-op applies', async (t) => {
  const { replica, calls, gate, freshLog } = setup(false)
  gate.onLeadership(true)
  t.same(calls, [], 'waits for its no-op')
  replica.apply(EntryType.Empty)
  t.same(calls, [true], 'promoted: no input was ever committed')
  t.same(freshLog, [true], 'and vouches for the never-synced VM (it will execute every input)')
  t.same(replica.transfers, [])
})

t.test('an untrusted VM in a log with inputs refuses and hands leadership over', async (t) => {
  const { replica, calls, gate, lines } = setup(false)
  replica.apply(EntryType.Normal, 1)
  replica.apply(EntryType.Empty, 1)
  gate.onLeadership(true)
  replica.apply(EntryType.Empty)
  t.same(calls, [], 'never promoted')
  t.same(replica.transfers, [4], 'leadership offered to the other VM voter, not the witness')
  t.match(lines.join(''), /refusing to act as primary/)
})

t.test('a log that starts with a snapshot counts as having carried inputs', async (t) => {
  // E.g. every replica restarted from a compacted WAL whose remaining entries hold no input.
  const { replica, calls, gate, lines } = setup(false)
  replica.snapshot(500)
  replica.apply(EntryType.SyncDone, 1)
  gate.onLeadership(true)
  replica.apply(EntryType.Empty)
  t.same(calls, [], 'the fresh VM is not promoted')
  t.same(replica.transfers, [4], 'leadership is handed over instead')
  t.match(lines.join(''), /refusing to act as primary/)
})

t.test('a trusted backup is promoted at once; losing leadership demotes', async (t) => {
  const { replica, calls, gate, freshLog } = setup(true)
  replica.apply(EntryType.Normal, 1)
  gate.onLeadership(true)
  t.same(calls, [true])
  t.same(freshLog, [undefined], 'trusted on its own: nothing to vouch for')
  gate.onLeadership(false)
  t.same(calls, [true, false])
})

t.test('leadership gained after its no-op was already applied is not stuck', async (t) => {
  const { replica, calls, gate } = setup(false)
  replica.apply(EntryType.Empty)
  gate.onLeadership(true)
  t.same(calls, [true])
})
