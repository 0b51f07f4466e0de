import t from 'tap'
import { MemoryLogCluster, NotLeaderError } from '../../src/log/memory-log.js'
import { type LogRecord, LogRecordKind } from '../../src/log/ordered-log.js'

t.test('in-order apply to every member, leadership, replay on join', async (t) => {
  const c = new MemoryLogCluster()
  const a = c.join()
  const b = c.join()
  const lead: boolean[] = []
  a.on('leadership', (l) => lead.push(l))
  c.setLeader(a)
  const atB: LogRecord[] = []
  b.on('apply', (r) => atB.push(r))
  await t.rejects(b.propose(LogRecordKind.Input, new Uint8Array([1])), NotLeaderError)
  const idx = await Promise.all([1, 2, 3].map((i) => a.propose(LogRecordKind.Input, new Uint8Array([i]))))
  t.same(idx, [1, 2, 3], 'indices')
  t.same(
    atB.map((r) => r.data[0]),
    [1, 2, 3],
    'applied in order on the follower before propose resolves',
  )
  t.ok(a.isLeader && !b.isLeader)
  const late = c.join({ replayFrom: 2 })
  const atLate: number[] = []
  late.on('apply', (r) => atLate.push(r.index))
  await new Promise((r) => setImmediate(r))
  t.same(atLate, [2, 3], 'a joining member replays from the requested index')
  c.leave(a)
  t.same(lead, [true, false], 'leaving leader loses leadership')
  t.equal(c.leader, undefined)
})
