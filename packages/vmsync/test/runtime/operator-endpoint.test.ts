// The operator port over real HTTP on loopback: open metrics and status, and an admin route that
// is off without a token, refuses a missing or wrong token, a wrong method, a malformed or
// oversized body, and passes only a checked request to the handler. With a certificate (made by
// openssl here) it speaks HTTPS only.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import type { MembershipRequest } from '../../src/runtime/membership-request.js'
import {
  MAX_ADMIN_BODY_BYTES,
  OperatorEndpoint,
  type OperatorHandlers,
  readOperatorTls,
} from '../../src/runtime/operator-endpoint.js'

const TOKEN = 'admin-token-0123456789'

interface Reply {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

function request(
  port: number,
  method: string,
  path: string,
  opts: { body?: string; token?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json' }
    if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`
    const req = http.request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end(opts.body)
  })
}

async function endpoint(t: Test, adminToken: string | undefined, over: Partial<OperatorHandlers> = {}) {
  const seen: MembershipRequest[] = []
  const e = new OperatorEndpoint({
    host: '127.0.0.1',
    port: 0,
    ...(adminToken === undefined ? {} : { adminToken }),
    handlers: {
      metrics: async () => 'plover_up 1\n',
      status: () => ({ role: 'leader' }),
      membership: async (req) => {
        seen.push(req)
        return { index: 7 }
      },
      ...over,
    },
  })
  await e.listen()
  t.teardown(() => e.close())
  return { port: e.port, seen }
}

t.test('metrics and status answer without a token', async (t) => {
  const { port } = await endpoint(t, TOKEN)
  const m = await request(port, 'GET', '/metrics')
  t.equal(m.status, 200)
  t.match(m.headers['content-type'], /^text\/plain/)
  t.equal(m.body, 'plover_up 1\n')
  const s = await request(port, 'GET', '/status')
  t.same([s.status, JSON.parse(s.body)], [200, { role: 'leader' }])
  const nf = await request(port, 'GET', '/nope')
  t.equal(nf.status, 404)
  t.match(nf.body, /GET \/metrics, GET \/status, POST \/admin\/membership/)
})

t.test('status is 503 while starting and 500 when its handler throws; the process lives on', async (t) => {
  let phase = 'starting'
  const { port } = await endpoint(t, TOKEN, {
    status: () => {
      if (phase === 'broken') throw new Error('status exploded')
      if (phase === 'circular') {
        const loop: Record<string, unknown> = {}
        loop.self = loop
        return loop
      }
      return phase === 'starting' ? undefined : { phase }
    },
    metrics: () => Promise.reject(new Error('registry closed')),
  })
  t.equal((await request(port, 'GET', '/status')).status, 503)
  phase = 'broken'
  const broken = await request(port, 'GET', '/status')
  t.same([broken.status, JSON.parse(broken.body)], [500, { error: 'status exploded' }])
  const m = await request(port, 'GET', '/metrics')
  t.same([m.status, JSON.parse(m.body)], [500, { error: 'registry closed' }])
  phase = 'circular'
  const circular = await request(port, 'GET', '/status')
  t.equal(circular.status, 500, 'a status that is not JSON-able is a 500, not a crash')
  phase = 'up'
  t.equal((await request(port, 'GET', '/status')).status, 200)
})

t.test('without an adminToken the admin route is off', async (t) => {
  const { port, seen } = await endpoint(t, undefined)
  const r = await request(port, 'POST', '/admin/membership', { body: '{"remove":1}', token: TOKEN })
  t.equal(r.status, 403)
  t.match(JSON.parse(r.body).error, /no adminToken is configured/)
  t.equal(seen.length, 0, 'the handler was not called')
})

t.test('a missing or wrong token is refused before the body is read', async (t) => {
  const { port, seen } = await endpoint(t, TOKEN)
  for (const token of [undefined, '', 'wrong', `${TOKEN}x`, TOKEN.slice(0, -1)]) {
    const r = await request(port, 'POST', '/admin/membership', {
      body: '{"remove":1}',
      ...(token === undefined ? {} : { token }),
    })
    t.equal(r.status, 401, `token ${JSON.stringify(token)}`)
    t.equal(r.headers['www-authenticate'], 'Bearer')
  }
  t.equal(seen.length, 0, 'the handler was not called')
})

t.test('the right token with a checked request reaches the handler', async (t) => {
  const { port, seen } = await endpoint(t, TOKEN)
  const r = await request(port, 'POST', '/admin/membership', {
    body: '{"add":4,"role":"learner"}',
    token: TOKEN,
  })
  t.same([r.status, JSON.parse(r.body)], [200, { index: 7 }])
  t.same(seen, [{ op: 'add', id: 4, learner: true }])
})

t.test('bad requests with the right token: method, JSON, shape, size; a refusal is a 409', async (t) => {
  const { port, seen } = await endpoint(t, TOKEN, {
    membership: () => Promise.reject(new Error('not the leader (leader is 2)')),
  })
  const get = await request(port, 'GET', '/admin/membership', { token: TOKEN })
  t.same([get.status, get.headers.allow], [405, 'POST'])
  const notJson = await request(port, 'POST', '/admin/membership', { body: '{remove', token: TOKEN })
  t.same([notJson.status, JSON.parse(notJson.body)], [400, { error: 'the body is not JSON' }])
  const shape = await request(port, 'POST', '/admin/membership', { body: '{"add":"4"}', token: TOKEN })
  t.equal(shape.status, 400)
  t.match(JSON.parse(shape.body).error, /positive integer/)
  const big = await request(port, 'POST', '/admin/membership', {
    body: JSON.stringify({ remove: 1, pad: 'x'.repeat(MAX_ADMIN_BODY_BYTES) }),
    token: TOKEN,
  })
  t.equal(big.status, 413)
  const refused = await request(port, 'POST', '/admin/membership', { body: '{"remove":1}', token: TOKEN })
  t.same([refused.status, JSON.parse(refused.body)], [409, { error: 'not the leader (leader is 2)' }])
  t.equal(seen.length, 0)
})

t.test('a short adminToken is refused at construction', async (t) => {
  t.throws(
    () =>
      new OperatorEndpoint({
        host: '127.0.0.1',
        port: 0,
        adminToken: 'short',
        handlers: {} as OperatorHandlers,
      }),
    /at least 16 characters/,
  )
})

/** A self-signed certificate for 127.0.0.1 (PEM), made by the openssl command line tool. */
function selfSigned(t: Test): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'plover-operator-tls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')]
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=plover-test',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  )
  return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') }
}

t.test('with a certificate the port speaks HTTPS, and plain HTTP gets no answer', async (t) => {
  const tls = selfSigned(t)
  const seen: MembershipRequest[] = []
  const e = new OperatorEndpoint({
    host: '127.0.0.1',
    port: 0,
    adminToken: TOKEN,
    tls,
    handlers: {
      metrics: () => 'plover_up 1\n',
      status: () => ({ role: 'leader' }),
      membership: async (req) => {
        seen.push(req)
        return { index: 9 }
      },
    },
  })
  await e.listen()
  t.teardown(() => e.close())
  const secure = (method: string, path: string, body?: string) =>
    new Promise<Reply>((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port: e.port,
          path,
          method,
          ca: tls.cert,
          headers: { authorization: `Bearer ${TOKEN}` },
        },
        (res) => {
          let text = ''
          res.setEncoding('utf8')
          res.on('data', (c: string) => (text += c))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }))
        },
      )
      req.on('error', reject)
      req.end(body)
    })
  const m = await secure('GET', '/metrics')
  t.same([m.status, m.body], [200, 'plover_up 1\n'], 'metrics over HTTPS, the certificate verified')
  const a = await secure('POST', '/admin/membership', '{"remove":2}')
  t.same([a.status, JSON.parse(a.body)], [200, { index: 9 }], 'the admin route over HTTPS')
  t.same(seen, [{ op: 'remove', id: 2 }])
  const plain = await request(e.port, 'GET', '/metrics').then(
    (r) => `answered ${r.status}`,
    (err: Error) => err.message,
  )
  t.notMatch(plain, /^answered 200/, `plain HTTP is not served (${plain})`)
})

t.test('a certificate that does not parse is refused at construction', async (t) => {
  t.throws(
    () =>
      new OperatorEndpoint({
        host: '127.0.0.1',
        port: 0,
        tls: { cert: 'not a certificate', key: 'not a key' },
        handlers: {} as OperatorHandlers,
      }),
  )
})

t.test('readOperatorTls reads a usable pair and names what is wrong with any other', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'plover-operator-tls-files-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { cert, key } = selfSigned(t)
  const [certFile, keyFile, junk] = [join(dir, 'c.pem'), join(dir, 'k.pem'), join(dir, 'junk.pem')]
  writeFileSync(certFile, cert)
  writeFileSync(keyFile, key)
  writeFileSync(junk, 'not PEM')
  const tls = await readOperatorTls({ certFile, keyFile }, 'metricsTls')
  t.equal(tls.cert.toString(), cert, 'the certificate as read')
  await t.rejects(readOperatorTls({ certFile: join(dir, 'nope.pem'), keyFile }, 'metricsTls'), {
    message: /^cannot read metricsTls\.certFile .*nope\.pem: ENOENT/,
  })
  await t.rejects(readOperatorTls({ certFile, keyFile: junk }, 'metrics.tls'), {
    message: /^metrics\.tls: the certificate or key is not usable/,
  })
})
