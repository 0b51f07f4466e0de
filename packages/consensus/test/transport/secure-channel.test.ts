// The SecureChannel primitive on real loopback sockets: round trips and backpressure, payloads
// encrypted on the wire (seen through a recording relay), and every way a peer can be wrong —
// wrong key, unknown or misaddressed id, other protocol, reflected or replayed handshake,
// tampered / replayed / reordered / oversized / short frames, garbage, silence — ends in a typed
// reason, a destroyed socket, and nothing delivered.
import { connect, createServer, type Server, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import type { SealedFrame } from '../../src/transport/auth.js'
import { frameHeader } from '../../src/transport/framing.js'
import { encodeChallenge } from '../../src/transport/handshake.js'
import {
  SecureChannel,
  SecureChannelError,
  type SecureChannelFailure,
} from '../../src/transport/secure-channel.js'
import { closed, KEY, rawAuthedClient } from './helpers.js'

const CONTEXT = 'secure-channel-test'
const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms))

interface Acceptor {
  readonly port: number
  /** Every acceptor-side channel, in accept order. */
  readonly channels: SecureChannel[]
  readonly sockets: Socket[]
  /** Resolves with the next acceptor channel's close error. */
  nextClose(): Promise<SecureChannelError>
  /** Resolves with the next acceptor channel once it is open. */
  nextOpen(): Promise<SecureChannel>
}

/** A listener whose connections become acceptor channels (ids 1 and 3 accepted, local id 2). */
async function acceptor(
  t: Test,
  opts: { key?: Uint8Array; maxFrameBytes?: number; handshakeTimeoutMs?: number; context?: string } = {},
): Promise<Acceptor> {
  const channels: SecureChannel[] = []
  const sockets: Socket[] = []
  const closes: SecureChannelError[] = []
  const opens: SecureChannel[] = []
  let wakeClose: (() => void) | undefined
  let wakeOpen: (() => void) | undefined
  const server: Server = createServer((socket) => {
    sockets.push(socket)
    const ch = new SecureChannel(socket, {
      role: 'acceptor',
      key: opts.key ?? KEY,
      context: opts.context ?? CONTEXT,
      localId: 2,
      acceptRemote: (id) => id === 1 || id === 3,
      maxFrameBytes: opts.maxFrameBytes,
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 2000,
    })
    channels.push(ch)
    ch.on('open', () => {
      opens.push(ch)
      wakeOpen?.()
    })
    ch.on('close', (e) => {
      closes.push(e)
      wakeClose?.()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(async () => {
    for (const c of channels) c.close('test over')
    await new Promise((r) => server.close(r))
  })
  const port = (server.address() as { port: number }).port
  const next = <T>(list: T[], set: (w: (() => void) | undefined) => void) =>
    new Promise<T>((resolve) => {
      if (list.length > 0) return resolve(list.shift()!)
      set(() => {
        set(undefined)
        resolve(list.shift()!)
      })
    })
  return {
    port,
    channels,
    sockets,
    nextClose: () => next(closes, (w) => (wakeClose = w)),
    nextOpen: () => next(opens, (w) => (wakeOpen = w)),
  }
}

function dial(
  port: number,
  opts: {
    key?: Uint8Array
    localId?: number
    remoteId?: number
    context?: string
    sendBacklogBytes?: number
  } = {},
): SecureChannel {
  return new SecureChannel(connect({ host: '127.0.0.1', port }), {
    role: 'dialer',
    key: opts.key ?? KEY,
    context: opts.context ?? CONTEXT,
    localId: opts.localId ?? 1,
    remoteId: opts.remoteId ?? 2,
    handshakeTimeoutMs: 2000,
    sendBacklogBytes: opts.sendBacklogBytes,
  })
}

function collect(ch: SecureChannel): Buffer[] {
  const got: Buffer[] = []
  ch.on('frame', (p) => got.push(Buffer.from(p)))
  return got
}

function closeOf(ch: SecureChannel): Promise<SecureChannelError> {
  return new Promise((r) => ch.once('close', r))
}

function expectReason(t: Test, err: SecureChannelError, reason: SecureChannelFailure, msg: RegExp) {
  t.ok(err instanceof SecureChannelError, `${err.name}`)
  t.equal(err.reason, reason, `reason ${reason}: ${err.message}`)
  t.match(err.message, msg)
}

t.test(
  'authenticated round trip, both directions, in order, batches, large and empty payloads',
  async (t) => {
    const acc = await acceptor(t)
    const d = dial(acc.port)
    t.equal(await d.opened, 2, 'dialer authenticated the acceptor')
    const a = await acc.nextOpen()
    t.equal(a.peer, 1, 'acceptor authenticated the dialer')
    t.teardown(() => d.close())
    const atA = collect(a)
    const atD = collect(d)
    const big = Buffer.alloc(3 * 1024 * 1024 + 7)
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff
    for (let i = 0; i < 100; i++) d.send(Buffer.from(`m${i}`))
    d.send([Buffer.from('b1'), Buffer.from('b2'), new Uint8Array(0)])
    const flushed = new Promise<Error | null | undefined>((r) => d.send([big], r))
    a.send(Buffer.from('pong'))
    t.notOk(await flushed, 'flush callback after the big frame was handed to the kernel')
    while (atA.length < 104 || atD.length < 1) await tick(5)
    t.same(
      atA.slice(0, 100).map((m) => m.toString()),
      Array.from({ length: 100 }, (_, i) => `m${i}`),
      'in order',
    )
    t.same(
      atA.slice(100, 103).map((m) => m.toString()),
      ['b1', 'b2', ''],
      'a batch arrives as separate frames',
    )
    t.ok(atA[103].equals(big), '3 MiB payload intact')
    t.equal(atD[0].toString(), 'pong', 'acceptor -> dialer')
  },
)

t.test('payloads are encrypted on the wire, both ways', async (t) => {
  const acc = await acceptor(t)
  // A recording relay between dialer and acceptor: everything that crosses the network.
  const wire: Buffer[] = []
  const relay = createServer((inbound) => {
    const outbound = connect({ host: '127.0.0.1', port: acc.port })
    inbound.on('data', (c: Buffer) => {
      wire.push(Buffer.from(c))
      outbound.write(c)
    })
    outbound.on('data', (c: Buffer) => {
      wire.push(Buffer.from(c))
      inbound.write(c)
    })
    inbound.on('error', () => outbound.destroy())
    outbound.on('error', () => inbound.destroy())
    inbound.on('close', () => outbound.destroy())
    outbound.on('close', () => inbound.destroy())
  })
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise((r) => relay.close(r)))
  const d = dial((relay.address() as { port: number }).port)
  await d.opened
  const a = await acc.nextOpen()
  t.teardown(() => d.close())
  const atA = collect(a)
  const atD = collect(d)
  const secret = Buffer.from('GUEST-MEMORY-PAGE-'.repeat(200))
  d.send(secret)
  a.send(Buffer.from('CLIENT-REPLY-SECRET'))
  while (atA.length < 1 || atD.length < 1) await tick(5)
  t.ok(atA[0].equals(secret), 'delivered intact')
  t.equal(atD[0].toString(), 'CLIENT-REPLY-SECRET')
  const seen = Buffer.concat(wire)
  t.ok(seen.length > secret.length, 'the relay saw the traffic')
  t.equal(seen.indexOf('GUEST-MEMORY'), -1, 'dialer -> acceptor payload not in clear')
  t.equal(seen.indexOf('CLIENT-REPLY'), -1, 'acceptor -> dialer payload not in clear')
})

t.test('wrong key: the dialer refuses the acceptor, the acceptor refuses a wrong proof', async (t) => {
  const acc = await acceptor(t)
  const d = dial(acc.port, { key: Buffer.from('ffffffffffffffffffffffffffffffff') })
  let opened = false
  d.on('frame', () => (opened = true))
  await t.rejects(d.opened, { name: 'SecureChannelError', reason: 'bad-key' })
  t.equal((await acc.nextClose()).reason, 'socket', 'acceptor saw the dialer hang up')
  // The other direction: a dialer that does hold a (wrong) key answers the challenge.
  const c = await rawAuthedClient(acc.port, 1, 2, {
    key: Buffer.from('wrong-key-wrong-key!'),
    context: CONTEXT,
  })
  expectReason(t, await acc.nextClose(), 'bad-key', /node 1 failed authentication/)
  await closed(c.socket)
  t.notOk(opened)
})

t.test('ids: unknown, own, misaddressed and a dialed id answered by another', async (t) => {
  const acc = await acceptor(t)
  await t.rejects(dial(acc.port, { localId: 9 }).opened, { name: 'SecureChannelError', reason: 'socket' })
  expectReason(t, await acc.nextClose(), 'unknown-peer', /node 9 is not an accepted peer/)
  await t.rejects(dial(acc.port, { localId: 2 }).opened)
  expectReason(t, await acc.nextClose(), 'unknown-peer', /node 2 is not an accepted peer/)
  await t.rejects(dial(acc.port, { remoteId: 7 }).opened)
  expectReason(t, await acc.nextClose(), 'wrong-peer', /hello addressed to node 7, I am 2/)

  // A hand-driven acceptor that answers as node 5 (with a proof it cannot have anyway).
  const liar = createServer((s) => {
    s.on('error', () => {})
    s.once('data', () => {
      const c = encodeChallenge({ from: 5, nonce: Buffer.alloc(32), proof: Buffer.alloc(32) })
      s.write(Buffer.concat([frameHeader(c.length), c]))
    })
  })
  await new Promise<void>((r) => liar.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise((r) => liar.close(r)))
  const d = dial((liar.address() as { port: number }).port)
  const err = await closeOf(d)
  expectReason(t, err, 'wrong-peer', /dialed node 2 but node 5 answered/)
  await t.rejects(d.opened, { name: 'SecureChannelError', reason: 'wrong-peer' })
})

t.test('another protocol sharing the key is refused at hello', async (t) => {
  const acc = await acceptor(t)
  await t.rejects(dial(acc.port, { context: 'other-protocol' }).opened)
  expectReason(t, await acc.nextClose(), 'protocol-mismatch', /peer speaks "other-protocol"/)
})

t.test('reflection: the acceptor own challenge proof sent back as the dialer proof is refused', async (t) => {
  const acc = await acceptor(t)
  const c = await rawAuthedClient(acc.port, 1, 2, { context: CONTEXT, proof: (ch) => ch.proof })
  expectReason(t, await acc.nextClose(), 'bad-key', /failed authentication/)
  await closed(c.socket)
})

t.test('a recorded handshake replayed on a new connection is refused', async (t) => {
  const acc = await acceptor(t)
  const first = await rawAuthedClient(acc.port, 1, 2, { context: CONTEXT })
  await acc.nextOpen()
  first.socket.destroy()
  await acc.nextClose()
  const s = connect({ host: '127.0.0.1', port: acc.port })
  s.on('error', () => {})
  s.write(first.helloFrame)
  s.write(first.proofFrame)
  expectReason(t, await acc.nextClose(), 'bad-key', /node 1 failed authentication/)
  await closed(s)
})

t.test(
  'after the handshake: tampered, forged, replayed, reordered, oversized and short frames',
  async (t) => {
    const acc = await acceptor(t, { maxFrameBytes: 1024 })
    // The first, authentic frame of the current attempt (the replay case sends it again).
    let REPLAY: SealedFrame | undefined
    const cases: [
      string,
      SecureChannelFailure,
      RegExp,
      (c: Awaited<ReturnType<typeof rawAuthedClient>>) => Buffer,
    ][] = [
      [
        'tampered payload',
        'bad-mac',
        /bad frame MAC/,
        (c) => {
          const f = c.frame(Buffer.from('evil!'))
          f[4 + 8] ^= 1
          return f
        },
      ],
      [
        'forged MAC',
        'bad-mac',
        /bad frame MAC/,
        (c) => {
          const s = c.mac.seal(Buffer.from('evil!'))
          return c.frame(Buffer.from('evil!'), { ...s, mac: Buffer.alloc(16) })
        },
      ],
      [
        'sequence number rewritten',
        'bad-mac',
        /bad frame MAC/,
        (c) => {
          const s = c.mac.seal(Buffer.from('evil!'))
          return c.frame(Buffer.from('evil!'), { ...s, seq: Buffer.alloc(8) })
        },
      ],
      [
        'replayed frame',
        'replay',
        /replayed frame \(sequence 0, expected 1\)/,
        (c) => c.frame(Buffer.from('hello'), REPLAY!),
      ],
      [
        'dropped frame',
        'reordered',
        /out-of-order frame \(sequence 2, expected 1\)/,
        (c) => {
          c.mac.seal(Buffer.from('lost'))
          return c.frame(Buffer.from('after the lost one'))
        },
      ],
      [
        'oversized length',
        'oversized',
        /frame length 10485760 exceeds max 1048/,
        () => frameHeader(10 * 1024 * 1024),
      ],
      [
        'frame shorter than seq + MAC',
        'malformed',
        /shorter than its sequence number and MAC/,
        () => Buffer.concat([frameHeader(10), Buffer.alloc(10)]),
      ],
    ]
    for (const [name, reason, pattern, attack] of cases) {
      const c = await rawAuthedClient(acc.port, 1, 2, { context: CONTEXT })
      const a = await acc.nextOpen()
      const got = collect(a)
      const good = c.mac.seal(Buffer.from('hello'))
      REPLAY = good
      c.socket.write(c.frame(Buffer.from('hello'), good))
      c.socket.write(attack(c))
      expectReason(t, await acc.nextClose(), reason, pattern)
      t.same(
        got.map((g) => g.toString()),
        ['hello'],
        `${name}: only the authentic frame was delivered`,
      )
      t.notOk(a.isOpen, `${name}: closed`)
      await closed(c.socket)
    }
  },
)

t.test('before the handshake: garbage, oversized length, silence', async (t) => {
  const acc = await acceptor(t, { handshakeTimeoutMs: 100 })
  const attempt = async (name: string, reason: SecureChannelFailure, pattern: RegExp, bytes: Buffer) => {
    const s = connect({ host: '127.0.0.1', port: acc.port })
    s.on('error', () => {})
    if (bytes.length > 0) s.write(bytes)
    expectReason(t, await acc.nextClose(), reason, pattern)
    await closed(s)
    t.pass(`${name}: socket closed`)
  }
  await attempt(
    'garbage',
    'malformed',
    /malformed handshake: not a Plover secure channel handshake/,
    Buffer.from('\x00\x00\x00\x10GET / HTTP/1.1\r\n\r\n'),
  )
  await attempt(
    'HTTP request',
    'oversized',
    /handshake frame length \d+ exceeds max 160/,
    Buffer.from('GET / HTTP/1.1\r\n\r\n'),
  )
  await attempt('silent client', 'timeout', /handshake timeout/, Buffer.alloc(0))
})

t.test('send: typed refusals; backpressure via writable, bufferedBytes and drain', async (t) => {
  const acc = await acceptor(t)
  const d = dial(acc.port, { sendBacklogBytes: 64 * 1024 })
  t.throws(() => d.send(Buffer.from('early')), { name: 'SecureChannelError', reason: 'not-open' })
  t.notOk(d.writable, 'not writable before open')
  await d.opened
  const a = await acc.nextOpen()
  t.throws(() => d.send(Buffer.alloc(16 * 1024 * 1024 + 1)), {
    name: 'SecureChannelError',
    reason: 'oversized',
  })
  // Stop reading on the acceptor's socket: the kernel buffers fill, then user space does.
  acc.sockets[acc.sockets.length - 1].pause()
  let received = 0
  a.on('frame', () => received++)
  const chunk = Buffer.alloc(256 * 1024)
  let sends = 0
  while (d.writable && sends < 400) {
    d.send(chunk)
    sends++
  }
  t.notOk(d.writable, `backlog after ${sends} sends`)
  t.ok(d.bufferedBytes >= 64 * 1024, `bufferedBytes ${d.bufferedBytes}`)
  const drained = new Promise<void>((r) => d.once('drain', r))
  acc.sockets[acc.sockets.length - 1].resume()
  await drained
  while (received < sends) await tick(5)
  t.equal(received, sends, 'every frame arrived once reading resumed')
  d.close('done')
  t.notOk(d.isOpen)
  t.throws(() => d.send(Buffer.from('late')), {
    name: 'SecureChannelError',
    reason: 'not-open',
    message: /closed/,
  })
})

t.test(
  'close: emitted exactly once with reason local; opened rejects when closed during the handshake',
  async (t) => {
    const acc = await acceptor(t)
    const d = dial(acc.port)
    let closes = 0
    d.on('close', (e) => {
      closes++
      t.equal(e.reason, 'local')
    })
    d.close('changed my mind')
    d.close('again')
    await t.rejects(d.opened, { name: 'SecureChannelError', reason: 'local', message: 'changed my mind' })
    t.equal(closes, 1)
    t.throws(
      () =>
        new SecureChannel(
          connect({ host: '127.0.0.1', port: acc.port })
            .on('error', () => {})
            .destroy(),
          {
            role: 'dialer',
            key: Buffer.from('short'),
            context: CONTEXT,
            localId: 1,
            remoteId: 2,
          },
        ),
      RangeError,
    )
  },
)
