// The QEMU example's replica process as an operator meets it, started standalone (no IPC, no
// QEMU): bad configuration gives one line on stderr and exit code 78, no stack trace; a port in
// use is named (78); a voter without root/CAP_NET_ADMIN gets 77, without QEMU on PATH 69 (on a real
// bridge and tap, removed afterwards); a witness started from a config
// file serves GET /metrics and /status over HTTP and stops cleanly on SIGTERM with exit code 0; a
// voter whose shutdown hangs (its QEMU stopped with SIGSTOP) exits 1 after shutdownTimeoutMs; a
// damaged log in the data directory gives 65 and is left untouched.
import { type SpawnOptions, spawn } from 'node:child_process'
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { EntryType, Wal } from '@plover/consensus'
import { findGuestImage, TestNetwork } from '@plover/qemu'
import t, { type Test } from 'tap'
import { freePorts } from '../src/demo/ports.js'
import { qemuEnvironment } from './qemu-environment.js'

const MAIN = fileURLToPath(new URL('../src/replica/main.ts', import.meta.url))
const CWD = fileURLToPath(new URL('..', import.meta.url))
const isRoot = process.getuid?.() === 0

interface Run {
  code: number | null
  signal: NodeJS.Signals | null
  stderr: string
  stdout: string
}

/**
 * Runs the replica entry point; `onStarted` once it logs "replica started". Killed after 25 s
 * (`killAfterMs`).
 * `bareEnv`: through `env -i` with PATH only (tap adds a process-info hook to NODE_OPTIONS of every
 * child it sees spawned; that hook writes into .tap/, which another uid may not).
 */
function run(
  args: string[],
  opts: {
    onStarted?: (pid: number) => void
    spawn?: SpawnOptions
    bareEnv?: boolean
    killAfterMs?: number
  } = {},
) {
  return new Promise<Run>((resolve) => {
    const node = [process.execPath, '--import', 'tsx', MAIN, ...args]
    const [cmd, ...argv] = opts.bareEnv
      ? ['env', '-i', `PATH=${process.env.PATH ?? '/usr/bin:/bin'}`, ...node]
      : node
    const child = spawn(cmd, argv, {
      cwd: CWD,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...opts.spawn,
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs ?? 25_000)
    let stderr = ''
    let stdout = ''
    let onStarted = opts.onStarted
    child.stderr!.on('data', (c) => (stderr += c))
    child.stdout!.on('data', (c) => {
      stdout += c
      if (onStarted && stdout.includes('"msg":"replica started"')) {
        onStarted(child.pid!)
        onStarted = undefined
      }
    })
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stderr, stdout })
    })
  })
}

/** The status code of a POST without credentials. */
function postStatus(port: number, path: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', timeout: 2000 }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('timeout', () => req.destroy(new Error(`POST ${path}: timed out`)))
    req.on('error', reject)
    req.end(body)
  })
}

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, timeout: 2000 }, (res) => {
      let body = ''
      res.on('data', (c) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
  })
}

// World-readable (0755 dir, 0644 files): the not-root test runs the process as uid 65534.
const dir = mkdtempSync(join(tmpdir(), 'plover-qr-replica-test-'))
chmodSync(dir, 0o755)
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const kernel = join(dir, 'bzImage')
const initrd = join(dir, 'initrd.gz')
writeFileSync(kernel, 'not a kernel', { mode: 0o644 })
writeFileSync(initrd, 'not an initrd', { mode: 0o644 })

/** A three-replica address book (two voters, a witness) and a config file for replica `id`. */
async function config(
  id: number,
  over: (doc: Record<string, unknown>) => Record<string, unknown> = (d) => d,
): Promise<{ file: string; ports: number[] }> {
  const ports = await freePorts(6)
  const file = join(dir, `c-${Math.random().toString(36).slice(2)}.json`)
  const doc: Record<string, unknown> = {
    id,
    dataDir: join(dir, `data-${ports[0]}`),
    clusterKeyHex: 'cd'.repeat(16),
    replicas: [
      { id: 1, role: 'voter', host: '127.0.0.1', consensusPort: ports[0], syncPort: ports[1] },
      { id: 2, role: 'voter', host: '127.0.0.1', consensusPort: ports[2], syncPort: ports[3] },
      { id: 3, role: 'witness', host: '127.0.0.1', consensusPort: ports[4] },
    ],
    bootstrap: [
      { id: 1, role: 'voter' },
      { id: 2, role: 'voter' },
      { id: 3, role: 'witness' },
    ],
    metrics: { port: ports[5] },
    ...(id === 3
      ? {}
      : {
          vm: {
            name: `qrtest${id}`,
            memoryMiB: 64,
            ramPath: `/dev/shm/plover-qrtest-${ports[0]}.ram`,
            tap: 'plvtestnotap',
            bridge: 'plvtestnobr',
            tapPrefix: 'plvt',
            ip: '10.77.0.10/24',
            kernel,
            initrd,
          },
        }),
  }
  writeFileSync(file, JSON.stringify(over(doc)), { mode: 0o644 })
  return { file, ports }
}

function oneLine(t: Test, r: Run, code: number, re: RegExp): void {
  t.equal(r.code, code, `exit code ${code}`)
  const lines = r.stderr.trim().split('\n')
  t.equal(lines.length, 1, `one line: ${r.stderr.trim()}`)
  t.match(lines[0], /^qemu-redis replica: /)
  t.match(lines[0], re)
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace')
  t.notMatch(r.stdout, /\n\s+at /, 'no stack trace on stdout either')
}

t.test('no configuration at all', async (t) => {
  const r = await run([], { spawn: { env: { ...process.env, PLOVER_QR_CONFIG: '' } } })
  oneLine(t, r, 78, /missing --config FILE/)
})

t.test('missing config file', async (t) => {
  oneLine(t, await run(['--config', join(dir, 'nope.json')]), 78, /cannot read config file/)
})

t.test('not JSON', async (t) => {
  const file = join(dir, 'bad.json')
  writeFileSync(file, '{ id: 1')
  oneLine(t, await run(['--config', file]), 78, /not valid JSON/)
})

t.test('unknown argument', async (t) => {
  const { file } = await config(3)
  oneLine(t, await run(['--config', file, '--colour', 'blue']), 78, /unknown argument "--colour"/)
})

t.test('unknown peer in bootstrap', async (t) => {
  const { file } = await config(3, (d) => ({
    ...d,
    bootstrap: [...(d.bootstrap as object[]), { id: 5, role: 'voter' }],
  }))
  oneLine(t, await run(['--config', file]), 78, /unknown peer: bootstrap member 5 is not in replicas/)
})

t.test('own id not in the address book (--id)', async (t) => {
  const { file } = await config(3)
  oneLine(t, await run(['--config', file, '--id', '9']), 78, /unknown peer: this replica's id 9/)
})

t.test('duplicate ports', async (t) => {
  const { file, ports } = await config(3)
  oneLine(
    t,
    await run(['--config', file, '--metrics-port', String(ports[0])]),
    78,
    /duplicate port: metrics\.port and replicas\[0\]\.consensusPort/,
  )
})

t.test(
  'missing guest image',
  { skip: !isRoot && 'a voter needs root before its files are checked' },
  async (t) => {
    const { file } = await config(1, (d) => ({
      ...d,
      vm: { ...(d.vm as object), kernel: join(dir, 'no-such-bzImage') },
    }))
    oneLine(t, await run(['--config', file]), 78, /vm\.kernel: image file .*no-such-bzImage does not exist/)
  },
)

t.test(
  'missing bridge',
  { skip: !isRoot && 'a voter needs root before its bridge is checked' },
  async (t) => {
    const { file } = await config(1)
    oneLine(t, await run(['--config', file]), 78, /vm\.bridge: plvtestnobr is not a bridge on this host/)
  },
)

t.test('not root: a voter needs CAP_NET_ADMIN for its taps', async (t) => {
  const { file } = await config(1)
  // CI runs as root: drop to nobody (setuid clears the capabilities).
  const r = await run(['--config', file], isRoot ? { spawn: { uid: 65534, gid: 65534 }, bareEnv: true } : {})
  oneLine(t, r, 77, /replica 1 is a voter: its taps need root or CAP_NET_ADMIN \(running as uid 65534/)
})

t.test(
  'QEMU not on PATH: exit 69 (unavailable)',
  { skip: !isRoot && 'needs root for the bridge and tap it checks first' },
  async (t) => {
    // A real bridge and tap, so every check before the programs passes; removed even on failure.
    const network = await TestNetwork.create()
    t.teardown(() => network.dispose())
    const tap = await network.addTap()
    const { file } = await config(1, (d) => ({
      ...d,
      vm: { ...(d.vm as object), bridge: network.bridge, tap },
    }))
    // node itself is started by path; PATH is where the replica looks for qemu and ip.
    const emptyBin = mkdtempSync(join(dir, 'bin-'))
    const r = await run(['--config', file], { spawn: { env: { ...process.env, PATH: emptyBin } } })
    oneLine(t, r, 69, /qemu-system-x86_64 not found on PATH \(apt-get install qemu-system-x86\)/)
  },
)

t.test('an unreadable metrics certificate: exit 78 with one line', async (t) => {
  const { file } = await config(3, (d) => ({
    ...d,
    metrics: {
      port: (d.metrics as { port: number }).port,
      tls: { certFile: join(dir, 'nope.crt'), keyFile: join(dir, 'nope.key') },
    },
  }))
  oneLine(t, await run(['--config', file]), 78, /cannot read metrics\.tls\.certFile .*nope\.crt/)
})

t.test('consensus port in use', async (t) => {
  const { file, ports } = await config(3)
  const blocker = net.createServer()
  await new Promise<void>((r) => blocker.listen(ports[4], '127.0.0.1', () => r()))
  t.teardown(() => blocker.close())
  oneLine(
    t,
    await run(['--config', file]),
    78,
    new RegExp(`consensus port ${ports[4]} on 127.0.0.1 is already in use`),
  )
})

t.test('metrics port in use', async (t) => {
  const { file, ports } = await config(3)
  const blocker = net.createServer()
  await new Promise<void>((r) => blocker.listen(ports[5], '127.0.0.1', () => r()))
  t.teardown(() => blocker.close())
  oneLine(
    t,
    await run(['--config', file]),
    78,
    new RegExp(`metrics port ${ports[5]} on 127.0.0.1 is already in use`),
  )
})

t.test('--help', async (t) => {
  const r = await run(['--help'])
  t.equal(r.code, 0)
  t.match(r.stdout, /usage: .*--config FILE/)
  t.match(r.stdout, /78 bad configuration/)
})

t.test(
  'a witness from a config file serves /metrics and /status, then stops cleanly on SIGTERM',
  async (t) => {
    // The file names replica 1 with no metrics port: flags make it the witness with one.
    const { file, ports } = await config(3, (d) => {
      const { metrics: _, ...rest } = d
      return { ...rest, id: 1 }
    })
    const metricsPort = ports[5]
    const dataDir = join(dir, 'witness-data')
    let metrics = ''
    let status: { status: number; body: string } | undefined
    let notFound = 0
    let admin = 0
    let sigtermAt = 0
    const r = await run(
      ['--config', file, '--id', '3', '--data-dir', dataDir, '--metrics-port', String(metricsPort)],
      {
        onStarted: (pid) => {
          void (async () => {
            try {
              metrics = (await get(metricsPort, '/metrics')).body
              status = await get(metricsPort, '/status')
              notFound = (await get(metricsPort, '/nope')).status
              admin = await postStatus(metricsPort, '/admin/membership', '{"remove": 2}')
            } finally {
              sigtermAt = Date.now()
              process.kill(pid, 'SIGTERM')
            }
          })()
        },
      },
    )
    const stoppedMs = Date.now() - sigtermAt
    t.match(metrics, /^plover_replica_up\{replica="3"\} 1$/m, 'up')
    t.match(metrics, /^plover_replica_is_witness\{replica="3"\} 1$/m)
    t.match(metrics, /^plover_replica_consensus_role\{replica="3",role="witness"\} 1$/m, 'role')
    for (const name of ['term', 'commit_index', 'leader_id', 'members'])
      t.match(metrics, new RegExp(`^plover_replica_${name}\\{replica="3"\\} \\d+$`, 'm'), `consensus ${name}`)
    t.match(metrics, /^# TYPE plover_replica_term gauge$/m, 'Prometheus text format')
    t.match(metrics, /^process_resident_memory_bytes\{replica="3"\} \d+$/m, 'process gauges')
    t.notMatch(metrics, /plover_vmsync_|plover_replica_vm_/, 'a witness has no VM metrics')
    t.equal(status?.status, 200)
    const s = JSON.parse(status?.body ?? '{}')
    t.match(s, {
      type: 'status',
      id: 3,
      pid: Number,
      consensusRole: 'witness',
      term: Number,
      commitIndex: Number,
      members: '1:voter 2:voter 3:witness',
    })
    t.notOk('vm' in s, 'no vm part for a witness')
    t.equal(notFound, 404)
    t.equal(admin, 403, 'no adminToken configured: the admin route is off')
    t.equal(r.code, 0, 'exit code 0 after SIGTERM')
    t.ok(stoppedMs < 5000, `stopped ${stoppedMs} ms after SIGTERM`)
    t.equal(r.stderr, '', 'nothing on stderr')
    t.match(r.stdout, /"msg":"stopped cleanly"/)
    for (const line of r.stdout.trim().split('\n'))
      t.doesNotThrow(() => JSON.parse(line), 'every log line is JSON', { diagnostic: false })
    const after = await get(metricsPort, '/metrics').catch((err: Error) => err)
    t.type(after, Error, 'the HTTP server is closed')
  },
)

t.test('a damaged log in the data directory: exit 65 with one line, nothing truncated', async (t) => {
  const { file } = await config(3)
  const dataDir = join(dir, 'damaged-data')
  const walDir = join(dataDir, 'consensus')
  const wal = await Wal.open(walDir)
  const entry = (index: number, text: string) => ({
    term: 1,
    index,
    type: EntryType.Normal,
    data: Buffer.from(text),
  })
  await wal.save({ hardState: { term: 1, vote: 0, commit: 0 }, entries: [entry(1, 'PAYLOAD-ONE')] })
  await wal.save({ entries: [entry(2, 'PAYLOAD-TWO'), entry(3, 'PAYLOAD-THREE')] })
  await wal.close()
  const segment = join(walDir, readdirSync(walDir).find((n) => n.endsWith('.wal'))!)
  const bytes = readFileSync(segment)
  // One flipped bit inside entry 1, with valid records after it: bit rot, not a torn write.
  bytes[bytes.indexOf('PAYLOAD-ONE') + 3]! ^= 0x01
  writeFileSync(segment, bytes)
  const r = await run(['--config', file, '--data-dir', dataDir])
  oneLine(t, r, 65, /damaged log in .*consensus: .*not a torn tail.*re-add this replica as a learner/)
  t.same(readFileSync(segment), bytes, 'the damaged segment is left as it was')
})

/** Pids of the direct children of `pid` whose command line mentions QEMU. */
function qemuChildren(pid: number): number[] {
  const out: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === pid && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('qemu-system'))
        out.push(Number(entry))
    } catch {} // gone meanwhile
  }
  return out
}

/** Running or stopped; a zombie (dead, not yet reaped by whoever adopted it) counts as gone. */
const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2))
  } catch {
    return false
  }
}

t.test(
  'a voter whose shutdown hangs exits 1 after shutdownTimeoutMs with one line, and QEMU dies too',
  async (t) => {
    if (!qemuEnvironment(t)) return
    const image = findGuestImage()!
    const network = await TestNetwork.create()
    let qemus: number[] = []
    t.teardown(async () => {
      for (const pid of qemus) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {}
      }
      await network.dispose()
    })
    const tap = await network.addTap()
    const { file, ports } = await config(1, (d) => ({
      ...d,
      // WHY 3 s: a QEMU that never answers costs its stop ~9 s (quit, SIGTERM, each given 3 s, then
      // SIGKILL): with the default 10 s a single stuck guest still ends in a clean exit 0.
      shutdownTimeoutMs: 3000,
      vm: {
        ...(d.vm as object),
        memoryMiB: 128,
        bridge: network.bridge,
        tap,
        tapPrefix: network.id,
        kernel: image.kernel,
        initrd: image.initrd,
      },
    }))
    // An abandoned shutdown skips the clean-up (that is the point): the RAM file and QEMU's run
    // dir stay behind.
    t.teardown(() => {
      rmSync(`/dev/shm/plover-qrtest-${ports[0]}.ram`, { force: true })
      for (const id of [1, 2])
        rmSync(join(tmpdir(), 'plover-qemu', `qrtest${id}`), { recursive: true, force: true })
    })
    let sigtermAt = 0
    const r = await run(['--config', file], {
      killAfterMs: 120_000,
      onStarted: (pid) => {
        // The guest's QEMU stops answering (SIGSTOP: QMP quit and SIGTERM go unanswered).
        qemus = qemuChildren(pid)
        for (const q of qemus) process.kill(q, 'SIGSTOP')
        sigtermAt = Date.now()
        process.kill(pid, 'SIGTERM')
      },
    })
    const exitedAfterMs = Date.now() - sigtermAt
    t.equal(qemus.length, 1, "the guest's QEMU was running")
    t.equal(r.code, 1, 'exit code 1')
    t.equal(r.stderr, 'qemu-redis replica: shutdown took longer than 3 s\n', 'one line on stderr')
    t.ok(exitedAfterMs >= 2_900 && exitedAfterMs < 8_000, `exited ${exitedAfterMs} ms after SIGTERM`)
    t.match(r.stdout, /"msg":"shutting down".*"signal":"SIGTERM"/)
    t.notMatch(r.stdout, /"msg":"stopped cleanly"/)
    // setpriv --pdeathsig KILL: the kernel kills QEMU (stopped or not) once the replica is gone.
    const deadline = Date.now() + 5_000
    while (qemus.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
    t.same(qemus.filter(alive), [], 'no QEMU outlives the replica process')
  },
)
