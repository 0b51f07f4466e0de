// Primary-side batching: flush by count, bytes or delay; one proposal per batch; frames lost
// (with an event) when not leader.
import t from 'tap'
import { decodeFrameBatch } from '../../src/input/frame-batch.js'
import { InputBatcher } from '../../src/input/input-batcher.js'
import { MemoryLogCluster } from '../../src/log/memory-log.js'
import { LogRecordKind } from '../../src/log/ordered-log.js'

t.test('batches by count, bytes and delay', async (t) => {
  const cluster = new MemoryLogCluster()
  const log = cluster.join()
  cluster.setLeader(log)
  const b = new InputBatcher(log, { maxFrames: 3, maxBytes: 100, maxDelayMs: 5 })
  for (let i = 0; i < 7; i++) b.push(Buffer.from(`f${i}`))
  b.push(Buffer.alloc(200, 1)) // byte bound flushes [f6, big]
  b.push(Buffer.from('late'))
  await new Promise((r) => setTimeout(r, 30)) // delay bound flushes [late]
  await b.drain()
  const batches = cluster.records.map((r) => {
    t.equal(r.kind, LogRecordKind.Input)
    return decodeFrameBatch(r.data).map((f) => (f.length > 10 ? `big${f.length}` : Buffer.from(f).toString()))
  })
  t.same(batches, [['f0', 'f1', 'f2'], ['f3', 'f4', 'f5'], ['f6', 'big200'], ['late']])
})

t.test('not leader: frames dropped with an event', async (t) => {
  const cluster = new MemoryLogCluster()
  const log = cluster.join()
  const b = new InputBatcher(log, { maxFrames: 2 })
  const dropped: number[] = []
  b.on('dropped', (n) => dropped.push(n))
  b.push(Buffer.from('a'))
  b.push(Buffer.from('b'))
  await b.drain()
  t.same(dropped, [2])
  t.equal(cluster.records.length, 0)
})
