import t from 'tap'
import { createMemoryLinkPair } from '../../src/link/memory-link.js'

t.test('memory link pair: async in-order delivery, copies, close propagates', async (t) => {
  const [a, b] = createMemoryLinkPair()
  const got: string[] = []
  b.on('message', (m) => got.push(Buffer.from(m).toString()))
  const buf = Buffer.from('one')
  await a.send(buf)
  buf.write('two')
  await a.send(Buffer.from('three'))
  t.same(got, [], 'not delivered synchronously')
  await new Promise((r) => setImmediate(r))
  t.same(got, ['one', 'three'], 'in order, sender buffer reuse does not leak')
  const closed = new Promise<Error | undefined>((r) => b.once('close', r))
  a.close()
  t.ok((await closed)?.name === 'LinkClosedError', 'peer sees LinkClosedError')
  await t.rejects(a.send(Buffer.from('x')), { name: 'LinkClosedError' })
})
