import t, { type Test } from 'tap'
import { QmpClient } from '../../src/qmp/client.js'
import { QmpDisconnectedError, QmpError, QmpProtocolError, QmpTimeoutError } from '../../src/qmp/errors.js'
import type { QmpEvent } from '../../src/qmp/types.js'
import { FakeQmpServer } from '../../src/testing/fake-qmp-server.js'

async function setup(t: Test, greeting?: string | null) {
  const server = await FakeQmpServer.start(greeting)
  t.teardown(() => server.close())
  return server
}

async function connected(t: Test) {
  const server = await setup(t)
  const client = await QmpClient.connect(server.path, { connectTimeoutMs: 2000, commandTimeoutMs: 500 })
  t.teardown(() => client.close())
  return { server, client }
}

t.test('greeting, capabilities, then commands carry ids and resolve with return', async (t) => {
  const { server, client } = await connected(t)
  const seen: unknown[] = []
  server.onCommand = (cmd, sock) => {
    seen.push(cmd)
    sock.write(`${JSON.stringify({ return: { status: 'running', running: true }, id: cmd.id })}\r\n`)
  }
  t.match(client.greeting, { version: { package: 'fake' } })
  t.same(await client.queryStatus(), { status: 'running', running: true })
  t.match(seen, [{ execute: 'query-status', id: /^plover-\d+$/ }])
})

t.test('replies out of order are matched by id', async (t) => {
  const { server, client } = await connected(t)
  const held: Array<{ id?: string | number; n: number }> = []
  server.onCommand = (cmd, sock) => {
    held.push({ id: cmd.id, n: (cmd.arguments as { n: number }).n })
    if (held.length === 2) {
      for (const h of held.reverse()) sock.write(`${JSON.stringify({ return: h.n, id: h.id })}\n`)
    }
  }
  const [a, b] = await Promise.all([client.execute('echo', { n: 1 }), client.execute('echo', { n: 2 })])
  t.same([a, b], [1, 2])
})

t.test('error reply → QmpError with class and desc; id-less error goes to the oldest command', async (t) => {
  const { server, client } = await connected(t)
  server.onCommand = (cmd, sock) => {
    if (cmd.execute === 'bad') {
      sock.write(
        `${JSON.stringify({ error: { class: 'CommandNotFound', desc: 'The command bad has not been found' }, id: cmd.id })}\n`,
      )
    } else sock.write(`${JSON.stringify({ error: { class: 'GenericError', desc: 'JSON parse error' } })}\n`)
  }
  const err = await client.execute('bad').catch((e: unknown) => e)
  t.type(err, QmpError)
  t.match(err, { class: 'CommandNotFound', desc: /has not been found/, command: 'bad' })
  await t.rejects(client.execute('unparseable'), { name: 'QmpError', class: 'GenericError' })
})

t.test('garbage and truncated JSON: protocolError events, no crash, the client keeps working', async (t) => {
  const { server, client } = await connected(t)
  const errors: QmpProtocolError[] = []
  client.on('protocolError', (e) => errors.push(e))
  server.onCommand = (cmd, sock) => {
    if (cmd.execute === 'garbage') {
      sock.write('\x00\xff not json at all\n{"return": {\n[]\n')
      // The real reply follows the garbage.
      sock.write(`${JSON.stringify({ return: 'ok', id: cmd.id })}\n`)
    } else if (cmd.execute === 'lost') {
      sock.write('{"return": {"trunc\n') // the only reply is broken → times out
    } else sock.write(`${JSON.stringify({ return: cmd.execute, id: cmd.id })}\n`)
  }
  t.equal(await client.execute('garbage'), 'ok')
  t.equal(errors.length, 3)
  for (const e of errors) t.type(e, QmpProtocolError)
  await t.rejects(client.execute('lost', undefined, { timeoutMs: 200 }), QmpTimeoutError)
  t.equal(errors.length, 4)
  t.equal(await client.execute('still-alive'), 'still-alive')
})

t.test('reply with an unknown id is a protocolError, not a crash', async (t) => {
  const { server, client } = await connected(t)
  const errors: QmpProtocolError[] = []
  client.on('protocolError', (e) => errors.push(e))
  server.onCommand = (cmd, sock) => {
    sock.write(
      `${JSON.stringify({ return: 1, id: 'nobody' })}\n${JSON.stringify({ return: 2, id: cmd.id })}\n`,
    )
  }
  t.equal(await client.execute('x'), 2)
  t.match(errors, [{ message: /unknown command id nobody/ }])
})

t.test('events are emitted typed, and waitForEvent filters', async (t) => {
  const { server, client } = await connected(t)
  const all: QmpEvent[] = []
  client.on('event', (e) => all.push(e))
  const completed = client.waitForEvent('MIGRATION', {
    timeoutMs: 1000,
    predicate: (e) => e.data.status === 'completed',
  })
  const sock = server.sockets[0]
  for (const status of ['setup', 'active', 'completed']) {
    sock.write(
      `${JSON.stringify({ event: 'MIGRATION', data: { status }, timestamp: { seconds: 5, microseconds: 6 } })}\n`,
    )
  }
  const ev = await completed
  t.equal(ev.data.status, 'completed')
  t.same(ev.timestamp, { seconds: 5, microseconds: 6 })
  t.same(
    all.map((e) => e.data),
    [{ status: 'setup' }, { status: 'active' }, { status: 'completed' }],
  )
  await t.rejects(client.waitForEvent('STOP', { timeoutMs: 50 }), QmpTimeoutError)
})

t.test(
  'peer disconnect: disconnected event once, every pending command rejected, later calls too',
  async (t) => {
    const { server, client } = await connected(t)
    server.onCommand = (cmd, sock) => {
      if (cmd.execute === 'die') sock.end('{"return": {"half')
    }
    const gone: QmpDisconnectedError[] = []
    const protocol: QmpProtocolError[] = []
    client.on('disconnected', (e) => gone.push(e))
    client.on('protocolError', (e) => protocol.push(e))
    const pending = [client.execute('hang1'), client.execute('hang2'), client.execute('die')]
    const waiting = client.waitForEvent('STOP', { timeoutMs: 5000 })
    const results = await Promise.allSettled([...pending, waiting])
    for (const r of results) {
      t.equal(r.status, 'rejected')
      t.type((r as PromiseRejectedResult).reason, QmpDisconnectedError)
    }
    t.same(
      results.slice(0, 3).map((r) => ((r as PromiseRejectedResult).reason as QmpDisconnectedError).command),
      ['hang1', 'hang2', 'die'],
    )
    t.equal(gone.length, 1)
    t.equal(gone[0].byClient, false)
    t.match(protocol, [{ message: /truncated/ }], 'the half-sent reply is reported')
    t.equal(client.connected, false)
    await t.rejects(client.queryStatus(), QmpDisconnectedError)
  },
)

t.test('close() by the client rejects pending commands with byClient', async (t) => {
  const { server, client } = await connected(t)
  server.onCommand = () => {}
  const p = client.execute('hang')
  client.close()
  await t.rejects(p, { name: 'QmpDisconnectedError', byClient: true })
})

t.test(
  'a peer that never greets → QmpTimeoutError; one that greets garbage → QmpProtocolError',
  async (t) => {
    const silent = await setup(t, null)
    await t.rejects(QmpClient.connect(silent.path, { connectTimeoutMs: 200 }), QmpTimeoutError)
    const rude = await setup(t, 'SSH-2.0-OpenSSH\r\n')
    await t.rejects(QmpClient.connect(rude.path, { connectTimeoutMs: 1000 }), QmpProtocolError)
  },
)

t.test('connect retries until the socket appears, and fails typed when it never does', async (t) => {
  await t.rejects(
    QmpClient.connect('/tmp/plover-no-such-dir/qmp.sock', { connectTimeoutMs: 150 }),
    QmpTimeoutError,
  )
  await t.rejects(
    QmpClient.connect('/tmp/plover-no-such-dir/qmp.sock', { connectTimeoutMs: 1000, retry: false }),
    { code: 'ENOENT' },
  )
})
