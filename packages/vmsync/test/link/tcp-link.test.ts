// The authenticated TCP sync link: round trips, ordering, large frames, and every way a peer can
// be wrong — wrong key, not our protocol, oversized length, tampered frame — ends in a typed
// error, a destroyed connection, and no message delivered.
import net from 'node:net'
import t from 'tap'
import { LinkAuthError, LinkClosedError, LinkFrameError } from '../../src/link/errors.js'
import {
  decodeHello,
  deriveKeys,
  encodeHello,
  frameMac,
  HELLO_BYTES,
  LinkRole,
  MAC_BYTES,
  newHello,
  proofFor,
} from '../../src/link/handshake.js'
import { connectSyncLink, SyncLinkServer, type TcpSyncLink } from '../../src/link/tcp-link.js'

const PSK = Buffer.from('a-pre-shared-key-for-the-link-test')

async function server(opts: { psk?: Uint8Array; maxFrameBytes?: number } = {}) {
  const s = new SyncLinkServer({
    psk: opts.psk ?? PSK,
    maxFrameBytes: opts.maxFrameBytes,
    handshakeTimeoutMs: 2000,
  })
  const addr = await s.listen(0)
  t.teardown(() => s.close())
  return { s, port: addr.port }
}

function collect(link: TcpSyncLink): Buffer[] {
  const got: Buffer[] = []
  link.on('message', (m) => got.push(Buffer.from(m)))
  return got
}

const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms))

t.test('authenticated round trip, in order, both directions, large payloads', async (t) => {
  const { s, port } = await server()
  const accepted = new Promise<TcpSyncLink>((r) => s.once('link', r))
  const a = await connectSyncLink({ host: '127.0.0.1', port, psk: PSK })
  const b = await accepted
  t.teardown(() => {
    a.close()
    b.close()
  })
  const atB = collect(b)
  const atA = collect(a)
  const big = Buffer.alloc(3 * 1024 * 1024 + 7)
  for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff
  for (let i = 0; i < 100; i++) await a.send(Buffer.from(`m${i}`))
  await a.send(big)
  await b.send(Buffer.from('pong'))
  await a.send(new Uint8Array(0))
  while (atB.length < 102 || atA.length < 1) await tick(5)
  t.same(
    atB.slice(0, 100).map((m) => m.toString()),
    Array.from({ length: 100 }, (_, i) => `m${i}`),
    'in order',
  )
  t.ok(atB[100].equals(big), '3 MiB payload intact')
  t.equal(atB[101].length, 0, 'empty payload')
  t.equal(atA[0].toString(), 'pong', 'listener -> dialer')
})

t.test('wrong pre-shared key: both sides refuse, no link', async (t) => {
  const { s, port } = await server()
  const rejected = new Promise<Error>((r) => s.once('rejected', r))
  let linked = false
  s.on('link', () => {
    linked = true
  })
  await t.rejects(
    connectSyncLink({ host: '127.0.0.1', port, psk: Buffer.from('the-wrong-key-0123456789') }),
    LinkError(),
  )
  const err = await rejected
  t.ok(
    err instanceof LinkAuthError || err instanceof LinkClosedError,
    `server rejected: ${err.name}: ${err.message}`,
  )
  t.notOk(linked, 'no link handed out')
})

function LinkError() {
  return { name: /Link(Auth|Closed)Error/ }
}

t.test('not our protocol: bad magic -> LinkFrameError, connection dropped', async (t) => {
  const { s, port } = await server()
  const rejected = new Promise<Error>((r) => s.once('rejected', r))
  const sock = net.connect({ host: '127.0.0.1', port })
  const closed = new Promise<void>((r) => sock.on('close', () => r()))
  sock.on('error', () => {})
  sock.resume() // consume the server's hello so the FIN is seen
  sock.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n-----------------------'))
  const err = await rejected
  t.ok(err instanceof LinkFrameError, `${err.name}: ${err.message}`)
  t.match(err.message, /bad magic/)
  await closed
  t.pass('server closed the connection')
})

/** A hand-driven client that completes the real handshake, then can write raw bytes. */
async function rawAuthenticated(port: number) {
  const sock = net.connect({ host: '127.0.0.1', port })
  sock.on('error', () => {})
  const self = newHello(LinkRole.Dialer)
  sock.write(encodeHello(self))
  const buf: Buffer[] = []
  await new Promise<void>((resolve) => {
    sock.on('data', (c: Buffer) => {
      buf.push(c)
      if (Buffer.concat(buf).length >= HELLO_BYTES + MAC_BYTES) resolve()
    })
  })
  const all = Buffer.concat(buf)
  const peer = decodeHello(all.subarray(0, HELLO_BYTES))
  sock.write(proofFor(PSK, self, peer))
  const keys = deriveKeys(PSK, self, peer)
  return { sock, keys }
}

function frame(payload: Buffer, mac: Buffer): Buffer {
  const h = Buffer.alloc(4)
  h.writeUInt32BE(payload.length + mac.length)
  return Buffer.concat([h, payload, mac])
}

t.test(
  'after the handshake: tampered frame -> LinkAuthError; oversized length -> LinkFrameError',
  async (t) => {
    const { s, port } = await server({ maxFrameBytes: 1024 })
    for (const kind of ['good-then-tampered', 'replayed', 'oversized'] as const) {
      const accepted = new Promise<TcpSyncLink>((r) => s.once('link', r))
      const { sock, keys } = await rawAuthenticated(port)
      const link = await accepted
      const got = collect(link)
      const closed = new Promise<Error | undefined>((r) => link.once('close', r))
      const good = Buffer.from('hello')
      const goodFrame = frame(good, frameMac(keys.sendKey, 0n, good))
      sock.write(goodFrame)
      if (kind === 'good-then-tampered') {
        const p = Buffer.from('evil!')
        const mac = frameMac(keys.sendKey, 1n, Buffer.from('hello'))
        sock.write(frame(p, mac))
      } else if (kind === 'replayed') {
        sock.write(goodFrame) // same bytes again: sequence number 1 expected, MAC was for 0
      } else {
        const h = Buffer.alloc(4)
        h.writeUInt32BE(10 * 1024 * 1024)
        sock.write(h)
      }
      const err = await closed
      t.same(
        got.map((g) => g.toString()),
        ['hello'],
        `${kind}: only the authentic frame was delivered`,
      )
      if (kind === 'oversized') t.ok(err instanceof LinkFrameError, `${kind}: ${err?.name}: ${err?.message}`)
      else t.ok(err instanceof LinkAuthError, `${kind}: ${err?.name}: ${err?.message}`)
      t.notOk(link.isOpen, 'link closed')
      sock.destroy()
    }
  },
)

t.test('reflection: a peer echoing our own hello is refused', async (t) => {
  const { s, port } = await server()
  const rejected = new Promise<Error>((r) => s.once('rejected', r))
  const sock = net.connect({ host: '127.0.0.1', port })
  sock.on('error', () => {})
  sock.once('data', (c: Buffer) => {
    // Send the server's own hello back as ours, then its proof can't be computed: echo garbage.
    sock.write(c.subarray(0, HELLO_BYTES))
    sock.write(Buffer.alloc(MAC_BYTES))
  })
  const err = await rejected
  t.ok(err instanceof LinkAuthError, `${err.name}: ${err.message}`)
})

t.test('send on a closed link rejects with LinkClosedError; close is emitted once', async (t) => {
  const { s, port } = await server()
  const accepted = new Promise<TcpSyncLink>((r) => s.once('link', r))
  const a = await connectSyncLink({ host: '127.0.0.1', port, psk: PSK })
  const b = await accepted
  let closes = 0
  b.on('close', () => closes++)
  a.close()
  await tick(50)
  t.equal(closes, 1, 'peer saw the close once')
  b.close()
  t.equal(closes, 1, 'idempotent')
  await t.rejects(a.send(Buffer.from('x')), { name: 'LinkClosedError' })
  await t.rejects(b.send(Buffer.from('x')), { name: 'LinkClosedError' })
})

t.test('short PSK refused up front', async (t) => {
  t.throws(() => new SyncLinkServer({ psk: Buffer.from('short') }), { name: 'LinkAuthError' })
  await t.rejects(connectSyncLink({ host: '127.0.0.1', port: 1, psk: Buffer.from('short') }), {
    name: 'LinkAuthError',
  })
})
