// The cluster client against real loopback servers: a replica that accepts but never answers
// (hung, or cut off from its peers) must not hold the client, and a NotLeader hint is followed.
import net from 'node:net'
import { decodeKvRequest, encodeKvResponse, KvOp, KvStatus } from '@plover/vmsync'
import t, { type Test } from 'tap'
import { KvClusterClient } from '../src/client/kv-cluster-client.js'
import { ClientMsg, ClientMsgDecoder, encodeClientMsg, encodeNotLeader } from '../src/client/wire.js'

type Behaviour = 'silent' | 'answer' | { redirect: () => string }

/** A replica's client port reduced to one behaviour; counts the requests it saw. */
async function server(t: Test, behave: Behaviour) {
  const seen = { requests: 0, connections: 0 }
  const sockets = new Set<net.Socket>()
  const srv = net.createServer((s) => {
    seen.connections++
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => {})
    const dec = new ClientMsgDecoder()
    s.on('data', (chunk) => {
      for (const m of dec.push(chunk)) {
        if (m.type !== ClientMsg.Request) continue
        seen.requests++
        if (behave === 'silent') continue
        if (behave !== 'answer') {
          s.write(encodeNotLeader({ leader: 2, client: behave.redirect() }))
          continue
        }
        const d = decodeKvRequest(m.body)
        if (d.kind !== 'request') continue
        const { op, clientId, requestId } = d.request
        const reply = encodeKvResponse({
          op,
          clientId,
          requestId,
          status: KvStatus.Ok,
          value: new Uint8Array(),
        })
        s.write(encodeClientMsg(ClientMsg.Response, reply))
      }
    })
  })
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  t.teardown(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy()
        srv.close(() => r())
      }),
  )
  return { endpoint: `127.0.0.1:${(srv.address() as net.AddressInfo).port}`, seen }
}

/** A hung replica listed first, a live one second, and a client with a short timeout. */
async function hungThenLive(t: Test) {
  const hung = await server(t, 'silent')
  const live = await server(t, 'answer')
  const client = new KvClusterClient({
    endpoints: [hung.endpoint, live.endpoint],
    clientId: 7,
    requestTimeoutMs: 300,
  })
  t.teardown(() => client.close())
  return { hung, live, client }
}

t.test('a replica that never answers is left after one timeout; the next one serves', async (t) => {
  const { hung, live, client } = await hungThenLive(t)
  const started = Date.now()
  const r = await client.call(KvOp.Set, 'k', 'v', Date.now() + 10_000)
  t.equal(r.status, KvStatus.Ok, 'the request was answered')
  t.equal(hung.seen.requests, 1, 'the hung replica got the request once, not again and again')
  t.equal(live.seen.requests, 1, 'the live replica answered the retry')
  t.equal(client.endpoint, live.endpoint, 'the client stays with the live replica')
  t.ok(Date.now() - started < 5000, 'within about one timeout')
})

t.test('every request pipelined on the abandoned connection is retried elsewhere', async (t) => {
  const { hung, live, client } = await hungThenLive(t)
  const rs = await Promise.all(
    Array.from({ length: 10 }, (_, i) => client.call(KvOp.Set, `k${i}`, 'v', Date.now() + 10_000)),
  )
  t.ok(
    rs.every((r) => r.status === KvStatus.Ok),
    'all ten were answered',
  )
  t.equal(hung.seen.connections, 1, 'the hung replica was connected to once')
  t.equal(live.seen.requests, 10, 'the live replica answered each once')
})

t.test('a NotLeader hint is followed to the leader', async (t) => {
  const live = await server(t, 'answer')
  const follower = await server(t, { redirect: () => live.endpoint })
  const other = await server(t, 'silent')
  const client = new KvClusterClient({
    endpoints: [follower.endpoint, other.endpoint, live.endpoint],
    clientId: 9,
  })
  t.teardown(() => client.close())
  const r = await client.call(KvOp.Get, 'k', undefined, Date.now() + 10_000)
  t.equal(r.status, KvStatus.Ok, 'answered by the leader')
  t.equal(other.seen.requests, 0, 'the hint was followed instead of trying endpoints in order')
})

t.test('one attempt at a non-leader rejects, naming it, and moves to the hinted leader', async (t) => {
  const live = await server(t, 'answer')
  const follower = await server(t, { redirect: () => live.endpoint })
  const client = new KvClusterClient({ endpoints: [follower.endpoint], clientId: 11 })
  t.teardown(() => client.close())
  await t.rejects(client.request(KvOp.Get, 'k'), {
    name: 'RetryableError',
    message: `${follower.endpoint} is not the leader`,
  })
  t.equal(client.endpoint, live.endpoint, 'the next attempt goes to the hinted leader')
  const r = await client.request(KvOp.Get, 'k')
  t.equal(r.status, KvStatus.Ok, 'answered by the leader')
})
