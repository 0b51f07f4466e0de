import { connect } from 'node:net'
import t from 'tap'
import { encodeMessage } from '../../src/codec/message.js'
import { EntryType } from '../../src/core/types.js'
import { TcpTransport } from '../../src/transport/transport.js'
import { closed, cluster, KEY, msg, rawAuthedClient, waitFor } from './helpers.js'

t.test('delivers messages both ways between every pair, with entries intact', async (t) => {
  const trs = await cluster(t, [1, 2, 3])
  const got = new Map<number, string[]>()
  for (const [id, tr] of trs)
    tr.on('message', (m) => got.set(id, [...(got.get(id) ?? []), `${m.from}:${m.term}`]))
  const big = new Uint8Array(200_000).map((_, i) => i & 0xff)
  const arrived = waitFor(trs.get(3)!, 'message', (m) => m.entries.length === 1)
  for (const [from, tr] of trs)
    for (const to of [1, 2, 3]) if (to !== from) tr.send(msg(from, to, 10 * from + to))
  trs.get(1)!.send(msg(1, 3, 99, { entries: [{ term: 1, index: 1, type: EntryType.Normal, data: big }] }))
  const [m] = await arrived
  t.ok(Buffer.from(big).equals(m.entries[0].data), '200 KB entry arrives byte-identical')
  await new Promise((r) => setTimeout(r, 100))
  t.same([...(got.get(1) ?? [])].sort(), ['2:21', '3:31'])
  t.same([...(got.get(2) ?? [])].sort(), ['1:12', '3:32'])
  t.same([...(got.get(3) ?? [])].sort(), ['1:13', '1:99', '2:23'])
})

t.test('reconnects after the remote restarts (both directions of the dial rule)', async (t) => {
  const trs = await cluster(t, [1, 2])
  const t1 = trs.get(1)!
  await waitFor(t1, 'connected')
  const port2 = trs.get(2)!.port!
  await trs.get(2)!.close()
  // Node 2 comes back on the same port with a fresh process state.
  const t2 = new TcpTransport({
    id: 2,
    listen: { host: '127.0.0.1', port: port2 },
    peers: new Map(),
    clusterKey: KEY,
  })
  t.teardown(() => t2.close())
  t2.addPeer(1, { host: '127.0.0.1', port: t1.port! })
  await t2.start()
  const up = waitFor(t1, 'connected', (id) => id === 2)
  await up
  const got = waitFor(t2, 'message')
  t1.send(msg(1, 2, 7))
  t.equal((await got)[0].term, 7, 'dialer reconnected to the restarted acceptor')
  const back = waitFor(t1, 'message')
  t2.send(msg(2, 1, 8))
  t.equal((await back)[0].term, 8)
})

t.test('wrong cluster key: both sides refuse, nothing is delivered', async (t) => {
  const good = await cluster(t, [2])
  const t2 = good.get(2)!
  const port2 = { port: t2.port! }
  const bad = new TcpTransport({
    id: 1,
    listen: { host: '127.0.0.1', port: 0 },
    peers: new Map([[2, { host: '127.0.0.1', port: port2.port }]]),
    clusterKey: Buffer.from('ffffffffffffffffffffffffffffffff'),
  })
  t.teardown(() => bad.close())
  t2.addPeer(1, { host: '127.0.0.1', port: 1 })
  let delivered = 0
  t2.on('message', () => delivered++)
  const refused = waitFor(bad, 'disconnected', (i) => /authentication/.test(i.reason))
  await bad.start()
  bad.send(msg(1, 2))
  const [info] = await refused
  t.match(info.reason, /node 2 failed authentication \(wrong key\?\)/)
  t.equal(bad.stats(2)?.connected, false)
  await new Promise((r) => setTimeout(r, 100))
  t.equal(delivered, 0)
})

t.test('an unknown node id is refused at hello', async (t) => {
  const trs = await cluster(t, [2])
  const t2 = trs.get(2)!
  const port = t2.port!
  const stranger = new TcpTransport({
    id: 1,
    listen: { host: '127.0.0.1', port: 0 },
    peers: new Map([[2, { host: '127.0.0.1', port }]]),
    clusterKey: KEY, // even with the right key
  })
  t.teardown(() => stranger.close())
  const refused = waitFor(t2, 'disconnected')
  await stranger.start()
  const [info] = await refused
  t.match(info.reason, /node 1 is not an accepted peer/)
})

t.test('hostile bytes drop the connection with a reason; the process and other links are fine', async (t) => {
  const trs = await cluster(t, [1, 2])
  const t2 = trs.get(2)!
  await waitFor(trs.get(1)!, 'connected')
  const port = t2.port!
  const reasons: string[] = []
  t2.on('disconnected', (i) => reasons.push(i.reason))
  // A second listener with a short handshake timeout, for the silent-client case.
  const slow = new TcpTransport({
    id: 5,
    listen: { host: '127.0.0.1', port: 0 },
    peers: new Map(),
    clusterKey: KEY,
    handshakeTimeoutMs: 100,
  })
  t.teardown(() => slow.close())
  const slowPort = await slow.start()
  slow.on('disconnected', (i) => reasons.push(i.reason))
  let injected = 0
  t2.on('message', (m) => {
    if (m.term === 666) injected++
  })

  const attempt = async (name: string, pattern: RegExp, act: () => Promise<import('node:net').Socket>) => {
    const before = reasons.length
    const s = await act()
    await closed(s)
    await new Promise((r) => setTimeout(r, 20))
    t.match(reasons.slice(before).join(' | '), pattern, name)
  }

  await attempt('garbage before handshake', /malformed handshake/, async () => {
    const s = connect({ host: '127.0.0.1', port })
    s.on('error', () => {})
    s.write(Buffer.from('\x00\x00\x00\x10GET / HTTP/1.1\r\n\r\n'))
    return s
  })
  await attempt('oversized length', /exceeds max/, async () => {
    const s = connect({ host: '127.0.0.1', port })
    s.on('error', () => {})
    s.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]))
    return s
  })
  // Node 3 is not a member of this 2-node cluster: use 1 (valid) for the authenticated attacks;
  // the real node 1's link is replaced while the attacker holds it, which is the documented rule.
  await attempt('bad frame MAC', /bad frame MAC/, async () => {
    const c = await rawAuthedClient(port, 1, 2)
    const payload = encodeMessage(msg(1, 2, 666))
    const sealed = c.mac.seal(payload)
    sealed.mac[0] ^= 1
    c.socket.write(c.frame(payload, sealed))
    return c.socket
  })
  await attempt('replayed frame', /replayed frame \(sequence 0, expected 1\)/, async () => {
    const c = await rawAuthedClient(port, 1, 2)
    const f = c.frame(encodeMessage(msg(1, 2, 5)))
    c.socket.write(f)
    c.socket.write(f)
    return c.socket
  })
  await attempt('garbage message inside a valid MAC', /malformed frame/, async () => {
    const c = await rawAuthedClient(port, 1, 2)
    c.socket.write(c.frame(Buffer.from([1, 200, 0, 0])))
    return c.socket
  })
  await attempt('impersonating another member', /message 3->2 on the authenticated link 1->2/, async () => {
    const c = await rawAuthedClient(port, 1, 2)
    c.socket.write(c.frame(encodeMessage(msg(3, 2, 666))))
    return c.socket
  })
  await attempt('silent client', /handshake timeout/, async () => {
    const s = connect({ host: '127.0.0.1', port: slowPort })
    s.on('error', () => {})
    return s
  })
  t.equal(injected, 0, 'no forged message reached the replica')
  // The legitimate node 1 reconnects (backoff) and still delivers.
  const ok = waitFor(t2, 'message', (m) => m.term === 42, 8000)
  const t1 = trs.get(1)!
  const resend = setInterval(() => t1.send(msg(1, 2, 42)), 50)
  t.teardown(() => clearInterval(resend))
  await ok
  t.pass('legitimate traffic still flows')
})

t.test('bounded queue drops the oldest and counts it while the peer is down', async (t) => {
  const tr = new TcpTransport({
    id: 1,
    listen: { host: '127.0.0.1', port: 0 },
    peers: new Map([[2, { host: '127.0.0.1', port: 1 }]]), // nothing listens on port 1
    clusterKey: KEY,
    maxQueue: 10,
  })
  t.teardown(() => tr.close())
  await tr.start()
  for (let i = 0; i < 25; i++) t.ok(tr.send(msg(1, 2, i)))
  t.same(tr.stats(2), { connected: false, queued: 10, dropped: 15, sent: 0 })
  t.notOk(tr.send(msg(1, 9)), 'unknown destination is not queued')
})

t.test('a message above maxFrameBytes is dropped and counted, never sent', async (t) => {
  const tr = new TcpTransport({
    id: 1,
    listen: { host: '127.0.0.1', port: 0 },
    peers: new Map([[2, { host: '127.0.0.1', port: 1 }]]),
    clusterKey: KEY,
    maxFrameBytes: 1024,
  })
  t.teardown(() => tr.close())
  await tr.start()
  const data = new Uint8Array(2000)
  t.notOk(tr.send(msg(1, 2, 1, { entries: [{ term: 1, index: 1, type: EntryType.Normal, data }] })))
  t.ok(tr.send(msg(1, 2, 2)))
  t.same(tr.stats(2), { connected: false, queued: 1, dropped: 1, sent: 0 })
})
