// The replica process as an operator meets it: bad configuration gives one line on stderr and
// exit code 78, no stack trace; a port in use is named; SIGTERM shuts a running replica down
// cleanly with exit code 0.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { httpGet } from '../src/demo/metrics-scrape.js'
import { freePorts } from '../src/demo/ports.js'

const MAIN = fileURLToPath(new URL('../src/replica/main.ts', import.meta.url))
const CWD = fileURLToPath(new URL('..', import.meta.url))

function run(args: string[], onStart?: (pid: number) => void) {
  return new Promise<{ code: number | null; stderr: string; stdout: string }>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: CWD })
    let stderr = ''
    let stdout = ''
    child.stderr.on('data', (c) => (stderr += c))
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
