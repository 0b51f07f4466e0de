// The authenticated TCP sync link: round trips, ordering, large frames, and how the underlying
// SecureChannel's failures (wrong key, not our protocol, wrong role, oversized length, tampered or
// replayed frame) surface as this package's typed link errors, with a destroyed connection and no
// message delivered. The attack cases of the channel itself are tested in @plover/consensus
// (test/transport/secure-channel.test.ts).
import net from 'node:net'
import { SecureChannel, SecureChannelError, TRANSPORT_CONTEXT } from '@plover/consensus'
import t from 'tap'
import { LinkAuthError, LinkClosedError, LinkFrameError } from '../../src/link/errors.js'
import {
  connectSyncLink,
  SYNC_DIALER_ID,
  SYNC_LINK_CONTEXT,
  SYNC_LISTENER_ID,
  SyncLinkServer,
  type TcpSyncLink,
} from '../../src/link/tcp-link.js'

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

t.test('not our protocol: garbage -> LinkFrameError, connection dropped', async (t) => {
  const { s, port } = await server()
  for (const [what, bytes, pattern] of [
    ['HTTP', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), /exceeds max/],
    ['framed garbage', Buffer.concat([Buffer.from([0, 0, 0, 16]), Buffer.alloc(16, 0x41)]), /bad magic/],
  ] as const) {
    const rejected = new Promise<Error>((r) => s.once('rejected', r))
    const sock = net.connect({ host: '127.0.0.1', port })
    const closed = new Promise<void>((r) => sock.on('close', () => r()))
    sock.on('error', () => {})
    sock.resume()
    sock.write(bytes)
    const err = await rejected
    t.ok(err instanceof LinkFrameError, `${what}: ${err.name}: ${err.message}`)
    t.match(err.message, pattern)
    t.ok(err.cause instanceof SecureChannelError, 'the channel error is the cause')
    await closed
    t.pass(`${what}: server closed the connection`)
  }
})

/**
 * A genuine SecureChannel dialer (any id, any context) whose socket writes are recorded, so a test
 * can resend or tamper with real frames and write raw bytes.
 */
async function rawDialer(port: number, opts: { localId?: number; context?: string } = {}) {
  const sock = net.connect({ host: '127.0.0.1', port })
  sock.on('error', () => {})
  const written: Buffer[] = []
  const write = sock.write.bind(sock) as (b: Uint8Array) => boolean
  sock.write = ((b: Uint8Array, ...rest: never[]) => {
    written.push(Buffer.from(b))
    return (write as (...a: unknown[]) => boolean)(b, ...rest)
  }) as typeof sock.write
  const ch = new SecureChannel(sock, {
    role: 'dialer',
    key: PSK,
    context: opts.context ?? SYNC_LINK_CONTEXT,
    localId: opts.localId ?? SYNC_DIALER_ID,
    remoteId: SYNC_LISTENER_ID,
  })
  return { sock, ch, written, raw: write }
}

t.test(
  'after the handshake: tampered or replayed frame -> LinkAuthError; oversized length -> LinkFrameError',
  async (t) => {
    const { s, port } = await server({ maxFrameBytes: 1024 })
    for (const kind of ['tampered', 'replayed', 'oversized'] as const) {
      const accepted = new Promise<TcpSyncLink>((r) => s.once('link', r))
      const d = await rawDialer(port)
      await d.ch.opened
      const link = await accepted
      const got = collect(link)
      const closed = new Promise<Error | undefined>((r) => link.once('close', r))
      d.written.length = 0
      d.ch.send(Buffer.from('hello'))
      const goodFrame = Buffer.concat(d.written)
      if (kind === 'tampered') {
        const f = Buffer.from(goodFrame)
        f[4 + 8] ^= 1
        d.raw(f)
      } else if (kind === 'replayed') {
        d.raw(goodFrame) // the same authentic bytes again: sequence 0 was already used
      } else {
        const h = Buffer.alloc(4)
        h.writeUInt32BE(10 * 1024 * 1024)
        d.raw(h)
      }
      const err = await closed
      t.same(
        got.map((g) => g.toString()),
        ['hello'],
        `${kind}: only the authentic frame was delivered`,
      )
      if (kind === 'oversized') t.ok(err instanceof LinkFrameError, `${kind}: ${err?.name}: ${err?.message}`)
      else t.ok(err instanceof LinkAuthError, `${kind}: ${err?.name}: ${err?.message}`)
      t.equal(
        (err?.cause as SecureChannelError | undefined)?.reason,
        { tampered: 'bad-mac', replayed: 'replay', oversized: 'oversized' }[kind],
      )
      t.notOk(link.isOpen, 'link closed')
      d.ch.close()
    }
  },
)

t.test('a peer claiming the listener role, or speaking the consensus transport, is refused', async (t) => {
  const { s, port } = await server()
  let linked = false
  s.on('link', () => {
    linked = true
  })
  for (const [what, opts, type, reason] of [
    ['listener role', { localId: SYNC_LISTENER_ID }, LinkAuthError, 'unknown-peer'],
    ['consensus transport, same key', { context: TRANSPORT_CONTEXT }, LinkFrameError, 'protocol-mismatch'],
  ] as const) {
    const rejected = new Promise<Error>((r) => s.once('rejected', r))
    const d = await rawDialer(port, opts)
    const err = await rejected
    t.ok(err instanceof type, `${what}: ${err.name}: ${err.message}`)
    t.equal((err.cause as SecureChannelError).reason, reason)
    await t.rejects(d.ch.opened)
  }
  t.notOk(linked, 'no link handed out')
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
