// The replica process as an operator meets it: bad configuration gives one line on stderr and
// exit code 78, no stack trace; a port in use is named; a log damaged in the middle gives 65 and is
// left untouched; SIGTERM shuts a running replica down cleanly with exit code 0, or gives up after
// shutdownTimeoutMs when the disk is stuck.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { KvOp } from '@plover/vmsync'
import t, { type Test } from 'tap'
import { KvClusterClient } from '../src/client/kv-cluster-client.js'
import { httpGet, httpPost } from '../src/demo/metrics-scrape.js'
import { freePorts } from '../src/demo/ports.js'

const MAIN = fileURLToPath(new URL('../src/replica/main.ts', import.meta.url))
const CWD = fileURLToPath(new URL('..', import.meta.url))

function run(args: string[], onStart?: (pid: number) => void, onStderr?: (text: string) => void) {
  return new Promise<{ code: number | null; stderr: string; stdout: string }>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: CWD })
    let stderr = ''
    let stdout = ''
    child.stderr.on('data', (c) => {
      stderr += c
      onStderr?.(stderr)
    })
    child.stdout.on('data', (c) => {
      stdout += c
      if (onStart && stdout.includes('"replica started"')) {
        onStart(child.pid!)
        onStart = undefined
      }
    })
    child.on('exit', (code) => resolve({ code, stderr, stdout }))
  })
}

const dir = mkdtempSync(join(tmpdir(), 'plover-replica-test-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

async function config(over: Record<string, unknown> = {}): Promise<{ file: string; ports: number[] }> {
  const ports = await freePorts(4)
  const file = join(dir, `c-${Math.random().toString(36).slice(2)}.json`)
  const doc = {
    id: 1,
    dataDir: join(dir, `data-${ports[0]}`),
    clusterKey: 'cd'.repeat(16),
    replicas: [
      {
        id: 1,
        role: 'voter',
        host: '127.0.0.1',
        consensusPort: ports[0],
        clientPort: ports[1],
        syncPort: ports[2],
        metricsPort: ports[3],
      },
    ],
    bootstrap: [{ id: 1, role: 'voter' }],
    vmPages: 256,
    ...over,
  }
  writeFileSync(file, JSON.stringify(doc))
  return { file, ports }
}

function oneLine(t: Test, stderr: string, re: RegExp): void {
  const lines = stderr.trim().split('\n')
  t.equal(lines.length, 1, `one line: ${stderr.trim()}`)
  t.match(lines[0], re)
  t.notMatch(stderr, /\n\s+at /, 'no stack trace')
}

t.test('missing file', async (t) => {
  const r = await run(['--config', join(dir, 'nope.json')])
  t.equal(r.code, 78)
  oneLine(t, r.stderr, /cannot read config file/)
})

t.test('not JSON', async (t) => {
  const file = join(dir, 'bad.json')
  writeFileSync(file, '{ id: 1')
  const r = await run(['--config', file])
  t.equal(r.code, 78)
  oneLine(t, r.stderr, /not valid JSON/)
})

t.test('unknown peer', async (t) => {
  const { file } = await config({
    bootstrap: [
      { id: 1, role: 'voter' },
      { id: 5, role: 'voter' },
    ],
  })
  const r = await run(['--config', file])
  t.equal(r.code, 78)
  oneLine(t, r.stderr, /unknown peer: bootstrap member 5/)
})

t.test('port in use', async (t) => {
  const { file, ports } = await config()
  const blocker = net.createServer()
  await new Promise<void>((r) => blocker.listen(ports[1], '127.0.0.1', () => r()))
  t.teardown(() => blocker.close())
  const r = await run(['--config', file])
  t.equal(r.code, 78)
  oneLine(t, r.stderr, new RegExp(`client port ${ports[1]} on 127.0.0.1 is already in use`))
})

t.test('a single-voter replica serves metrics, then stops cleanly on SIGTERM', async (t) => {
  const { file, ports } = await config()
  let metrics = ''
  const r = await run(['--config', file], (pid) => {
    const poll = async () => {
      for (let i = 0; i < 100 && !metrics.includes('plover_replica_is_leader{replica="1"} 1'); i++) {
        metrics = await httpGet(ports[3], '/metrics').catch(() => '')
        await new Promise((res) => setTimeout(res, 50))
      }
      process.kill(pid, 'SIGTERM')
    }
    void poll()
  })
  t.match(metrics, /plover_replica_is_leader\{replica="1"\} 1/, 'it elected itself and says so in /metrics')
  t.match(metrics, /plover_vmsync_/, 'vmsync metrics are exposed too')
  t.equal(r.code, 0, 'exit code 0')
  t.match(r.stdout, /"msg":"stopped cleanly"/)
  for (const line of r.stdout.trim().split('\n'))
    t.doesNotThrow(() => JSON.parse(line), 'every log line is JSON', { diagnostic: false })
})

t.test('the admin route of a running replica takes only its token', async (t) => {
  const token = 'operator-token-0123456789'
  const { file, ports } = await config({ adminToken: token })
  const outcomes: string[] = []
  const r = await run(['--config', file], (pid) => {
    void (async () => {
      for (let i = 0; i < 100; i++) {
        const m = await httpGet(ports[3], '/metrics').catch(() => '')
        if (m.includes('plover_replica_is_leader{replica="1"} 1')) break
        await new Promise((res) => setTimeout(res, 50))
      }
      const post = (body: unknown, tok: string) =>
        httpPost(ports[3], '/admin/membership', body, tok).then(
          (text) => `200 ${text}`,
          (err: Error) => err.message,
        )
      outcomes.push(await post({ add: 9 }, 'not-the-token-at-all'))
      outcomes.push(await post({ add: 9 }, token))
      outcomes.push(await post({ add: '9' }, token))
      process.kill(pid, 'SIGTERM')
    })()
  })
  t.equal(r.code, 0)
  t.match(outcomes[0], /^\/admin\/membership: 401 /, 'a wrong token is refused')
  t.match(
    outcomes[1],
    /^\/admin\/membership: 409 .*unknown peer 9/,
    'the right token reaches the leader, which checks the address book',
  )
  t.match(
    outcomes[2],
    /^\/admin\/membership: 400 .*positive integer/,
    'a malformed request is refused as such',
  )
})

t.test('with metricsTls the operator port speaks HTTPS; an unreadable certificate is exit 78', async (t) => {
  const token = 'operator-token-0123456789'
  const [certFile, keyFile] = [join(dir, 'tls.crt'), join(dir, 'tls.key')]
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
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  )
  const ca = readFileSync(certFile)
  const { file, ports } = await config({ adminToken: token, metricsTls: { certFile, keyFile } })
  const got: string[] = []
  const r = await run(['--config', file], (pid) => {
    void (async () => {
      for (let i = 0; i < 100; i++) {
        const m = await httpsRequest(ports[3], 'GET', '/metrics', ca).catch(() => '')
        if (m.includes('plover_replica_is_leader{replica="1"} 1')) break
        await new Promise((res) => setTimeout(res, 50))
      }
      got.push(await httpsRequest(ports[3], 'GET', '/metrics', ca))
      got.push(await httpsRequest(ports[3], 'POST', '/admin/membership', ca, { token, body: '{"add": 9}' }))
      process.kill(pid, 'SIGTERM')
    })()
  })
  t.equal(r.code, 0)
  t.match(got[0], /plover_replica_is_leader\{replica="1"\} 1/, 'metrics over HTTPS, the certificate verified')
  t.match(got[1], /^409 .*unknown peer 9/, 'the admin route over HTTPS')

  const missing = await config({ metricsTls: { certFile: join(dir, 'nope.crt'), keyFile } })
  const bad = await run(['--config', missing.file])
  t.equal(bad.code, 78)
  oneLine(t, bad.stderr, /cannot read metricsTls\.certFile .*nope\.crt/)
})

t.test('a log damaged in the middle: exit 65 with one line, nothing truncated', async (t) => {
  const { file, ports } = await config()
  // A real log first: the replica elects itself and commits a few client writes.
  const first = await run(['--config', file], (pid) => {
    void (async () => {
      for (let i = 0; i < 200; i++) {
        const m = await httpGet(ports[3], '/metrics').catch(() => '')
        if (m.includes('plover_replica_vm_primary{replica="1"} 1')) break
        await new Promise((res) => setTimeout(res, 50))
      }
      const client = new KvClusterClient({ endpoints: [`127.0.0.1:${ports[1]}`], clientId: 9 })
      try {
        for (let i = 0; i < 20; i++) await client.request(KvOp.Set, `key-${i}`, `durable-value-${i}`)
      } finally {
        client.close()
        process.kill(pid, 'SIGTERM')
      }
    })()
  })
  t.equal(first.code, 0, 'the first run wrote its log and stopped cleanly')
  const walDir = join(dir, `data-${ports[0]}`, 'consensus')
  const segment = join(walDir, readdirSync(walDir).find((n) => n.endsWith('.wal'))!)
  const bytes = readFileSync(segment)
  const at = bytes.indexOf('durable-value-3')
  t.ok(at > 0, 'the writes are in the log')
  // One flipped bit in an early record, valid records after it: bit rot, not a torn write.
  bytes[at + 2]! ^= 0x01
  writeFileSync(segment, bytes)
  const r = await run(['--config', file])
  t.equal(r.code, 65, 'exit code 65 (EX_DATAERR)')
  oneLine(
    t,
    r.stderr,
    /^plover replica: damaged log in .*consensus: .*not a torn tail.*re-add this replica as a learner/,
  )
  t.same(readFileSync(segment), bytes, 'the damaged segment is left as it was')
})

// A stuck disk: the data directory is on a small ext4 image that the test freezes (fsfreeze), so
// the WAL's write blocks in the kernel and the clean shutdown cannot finish. The replica must give
// up after shutdownTimeoutMs with one line and exit code 1. (The process can only leave once the
// blocked write returns, so the test thaws the disk after the line appeared.) Root only.
const frozenDiskTools = ['mkfs.ext4', 'fsfreeze', 'mount', 'umount'].every(
  (tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0,
)
const canFreeze = process.getuid?.() === 0 && frozenDiskTools
const requireAll = process.env.PLOVER_REQUIRE_QEMU === '1'
t.test(
  'a shutdown stuck on a frozen disk is abandoned after shutdownTimeoutMs',
  { skip: canFreeze || requireAll ? false : 'needs root, mkfs.ext4 and fsfreeze' },
  async (t) => {
    t.ok(canFreeze, 'root, mkfs.ext4 and fsfreeze are available (required in CI)')
    if (!canFreeze) return
    const root = mkdtempSync(join(tmpdir(), 'plover-frozen-'))
    const image = join(root, 'disk.img')
    const mnt = join(root, 'mnt')
    mkdirSync(mnt)
    const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { stdio: 'pipe' })
    sh(`truncate -s 64M ${image} && mkfs.ext4 -q -F ${image} && mount -o loop ${image} ${mnt}`)
    // Belt and braces: thaw after 60 s whatever happens to this test process.
    const watchdog = spawn('sh', ['-c', `sleep 60; fsfreeze -u ${mnt}`], { detached: true, stdio: 'ignore' })
    watchdog.unref()
    t.teardown(() => {
      spawnSync('fsfreeze', ['-u', mnt])
      spawnSync('umount', [mnt])
      try {
        process.kill(-watchdog.pid!, 'SIGKILL')
      } catch {}
      rmSync(root, { recursive: true, force: true })
    })

    const { file, ports } = await config({ dataDir: join(mnt, 'data'), shutdownTimeoutMs: 2000 })
    let sentTerm = 0
    let lineAt = 0
    let thawed = false
    let client: KvClusterClient | undefined
    t.teardown(() => client?.close())
    const r = await run(
      ['--config', file],
      (pid) => {
        void (async () => {
          for (let i = 0; i < 200; i++) {
            const m = await httpGet(ports[3], '/metrics').catch(() => '')
            if (m.includes('plover_replica_is_leader{replica="1"} 1')) break
            await new Promise((res) => setTimeout(res, 50))
          }
          sh(`fsfreeze -f ${mnt}`)
          // A client write: the leader appends it to its WAL, which now blocks.
          client = new KvClusterClient({ endpoints: [`127.0.0.1:${ports[1]}`], clientId: 7 })
          client.request(KvOp.Set, 'k', 'v').catch(() => {})
          await new Promise((res) => setTimeout(res, 300))
          sentTerm = Date.now()
          process.kill(pid, 'SIGTERM')
        })()
      },
      (line) => {
        if (line.includes('shutdown took longer') && !thawed) {
          lineAt = Date.now()
          thawed = true
          spawnSync('fsfreeze', ['-u', mnt])
        }
      },
    )
    t.equal(r.code, 1, 'exit code 1')
    oneLine(t, r.stderr, /^plover replica: shutdown took longer than 2 s$/)
    t.ok(lineAt - sentTerm >= 1900, `gave up after the limit (${lineAt - sentTerm} ms after SIGTERM)`)
    t.ok(lineAt - sentTerm < 10_000, 'and not much later')
    t.match(r.stdout, /"msg":"shutting down"/)
    t.notMatch(r.stdout, /"msg":"stopped cleanly"/, 'the clean shutdown did not finish')
  },
)

/** GET or POST over HTTPS, trusting only `ca`; resolves with the body ("<status> <body>" unless 200). */
function httpsRequest(
  port: number,
  method: string,
  path: string,
  ca: Buffer,
  o: { token?: string; body?: string } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method,
        ca,
        timeout: 2000,
        headers: o.token ? { authorization: `Bearer ${o.token}` } : {},
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (text += c))
        res.on('end', () => resolve(res.statusCode === 200 ? text : `${res.statusCode} ${text}`))
      },
    )
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', reject)
    req.end(o.body)
  })
}
