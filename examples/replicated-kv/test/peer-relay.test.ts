// The partition the fault tests rely on: through a cut relay nothing crosses (bytes, a close, a
// new connection) until heal(), and then everything that was held arrives in order.
import net from 'node:net'
import t, { type Test } from 'tap'
import { PeerRelay } from '../src/demo/peer-relay.js'
import { sleep, until } from '../src/demo/until.js'

/** A server that records what each accepted connection received and whether it closed. */
async function recorder() {
  const conns: { socket: net.Socket; data: string; closed: boolean }[] = []
  const server = net.createServer((socket) => {
    const c = { socket, data: '', closed: false }
    conns.push(c)
    socket.on('data', (d) => {
      c.data += d.toString()
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      c.closed = true
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const port = (server.address() as net.AddressInfo).port
  return { conns, port, close: () => new Promise((r) => server.close(r)) }
}

async function dial(
  port: number,
): Promise<{ socket: net.Socket; data: () => string; closed: () => boolean }> {
  const socket = net.connect(port, '127.0.0.1')
  let data = ''
  let closed = false
  socket.on('data', (d) => {
    data += d.toString()
  })
  socket.on('error', () => {})
  socket.on('close', () => {
    closed = true
  })
  await new Promise((r) => socket.once('connect', r))
  return { socket, data: () => data, closed: () => closed }
}

async function relayTo(t: Test) {
  const target = await recorder()
  const relay = new PeerRelay(1, 2, { host: '127.0.0.1', port: target.port })
  await relay.listen()
  t.teardown(async () => {
    await relay.close()
    await target.close()
  })
  return { target, relay }
}

t.test('bytes flow both ways while connected', async (t) => {
  const { target, relay } = await relayTo(t)
  const c = await dial(relay.port)
  c.socket.write('ping')
  await until('the target to get the bytes', 5000, async () => target.conns[0]?.data === 'ping')
  target.conns[0]!.socket.write('pong')
  await until('the dialer to get the answer', 5000, async () => c.data() === 'pong')
  t.pass('relayed both ways')
  c.socket.destroy()
})

t.test('a cut holds bytes in both directions and a close; heal delivers them in order', async (t) => {
  const { target, relay } = await relayTo(t)
  const c = await dial(relay.port)
  c.socket.write('a')
  await until('the first byte across', 5000, async () => target.conns[0]?.data === 'a')
  const far = target.conns[0]!

  relay.cut()
  c.socket.write('b')
  far.socket.write('x')
  c.socket.end('c')
  await sleep(300)
  t.equal(far.data, 'a', 'nothing the dialer sent during the cut arrived')
  t.equal(c.data(), '', 'nothing the target sent during the cut arrived')
  t.equal(far.closed, false, "the dialer's close did not reach the target")

  relay.heal()
  await until(
    'the held bytes and the close to arrive',
    5000,
    async () => far.data === 'abc' && c.data() === 'x',
  )
  t.pass('held bytes arrived in order after heal')
  far.socket.end()
  await until('both ends to close', 5000, async () => c.closed() && far.closed)
})

t.test('a connection made during a cut reaches the target only after heal', async (t) => {
  const { target, relay } = await relayTo(t)
  relay.cut()
  const c = await dial(relay.port)
  c.socket.write('hello')
  await sleep(300)
  t.equal(target.conns.length, 0, 'no connection reached the target during the cut')
  relay.heal()
  await until(
    'the parked connection to arrive with its bytes',
    5000,
    async () => target.conns[0]?.data === 'hello',
  )
  t.pass('parked connection made at heal')
  c.socket.destroy()
})

t.test('a refused target is passed on as a closed connection', async (t) => {
  const target = await recorder()
  await target.close()
  const relay = new PeerRelay(1, 2, { host: '127.0.0.1', port: target.port })
  await relay.listen()
  t.teardown(() => relay.close())
  const c = await dial(relay.port)
  await until('the dialer to see the close', 5000, async () => c.closed())
  t.pass('closed')
})
