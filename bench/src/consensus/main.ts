// Consensus bench: Plover (3 replica processes, fsync on) vs etcd (3 members, default fsync),
// same machine, same run, same entry sizes and proposer concurrency. Prints a table and writes
// bench/results/consensus.json.
//
//   cd bench && pnpm consensus            # full: sizes 128,4096 × concurrency 1,16,64,256, 5 s each
//   cd bench && pnpm consensus --quick    # 2 s per point, concurrency 1,16,64
//   options: --duration-ms N --warmup-ms N --concurrency 1,16 --sizes 128 --skip-etcd --no-build
import { type ChildProcess, fork, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer, type Socket } from 'node:net'
import { cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { type EtcdCluster, leaderClient, startEtcd, stopEtcd } from './etcd.js'
import { encodeRequestHeader, FrameDecoder, parseResponse } from './protocol.js'
import { closedLoop, type RunResult } from './stats.js'

const here = dirname(fileURLToPath(import.meta.url))
const benchRoot = join(here, '..', '..')

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    'duration-ms': { type: 'string' },
    'warmup-ms': { type: 'string' },
    concurrency: { type: 'string' },
    sizes: { type: 'string', default: '128,4096' },
    'skip-etcd': { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
    'tick-ms': { type: 'string', default: '10' },
    'election-ticks': { type: 'string', default: '30' },
    'heartbeat-ticks': { type: 'string', default: '3' },
    'wal-io': { type: 'string', default: 'threadpool' },
    'prewarm-ms': { type: 'string' },
  },
})
const quick = values.quick
const durationMs = Number(values['duration-ms'] ?? (quick ? 2000 : 5000))
const warmupMs = Number(values['warmup-ms'] ?? (quick ? 500 : 1000))
const concurrencies = (values.concurrency ?? (quick ? '1,16,64' : '1,16,64,256')).split(',').map(Number)
const sizes = values.sizes.split(',').map(Number)
// One untimed run per system before the first point: JIT, connections, page cache, etcd's boltdb.
const prewarmMs = Number(values['prewarm-ms'] ?? (quick ? 1000 : 3000))

async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<import('node:net').Server>((r) => {
          const s = createServer()
          s.listen(0, '127.0.0.1', () => r(s))
        }),
    ),
  )
  const ports = servers.map((s) => (s.address() as { port: number }).port)
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))))
  return ports
}

/** Pipelined request/response client to one replica's bench port. */
class PloverClient {
  private next = 1
  private readonly waiting = new Map<number, (ok: boolean) => void>()
  private out: Uint8Array[] = []
  private outBytes = 0
  private flushScheduled = false
  private constructor(private readonly socket: Socket) {}

  static async connect(port: number): Promise<PloverClient> {
    const socket = connect({ host: '127.0.0.1', port })
    socket.setNoDelay(true)
    await new Promise<void>((r, j) => socket.once('connect', r).once('error', j))
    const c = new PloverClient(socket)
    const dec = new FrameDecoder(1 << 20)
    socket.on('data', (chunk: Buffer) => {
      dec.push(chunk)
      for (let f = dec.next(); f; f = dec.next()) {
        const r = parseResponse(f)
        c.waiting.get(r.req)?.(r.ok)
        c.waiting.delete(r.req)
      }
    })
    socket.on('close', () => {
      for (const w of c.waiting.values()) w(false)
      c.waiting.clear()
    })
    return c
  }

  propose(data: Uint8Array): Promise<boolean> {
    const req = this.next++
    return new Promise((resolve) => {
      this.waiting.set(req, resolve)
      // Coalesce every request issued in this turn into one socket write (as the replica
      // batches its responses, and as etcd's gRPC/HTTP2 client does): one syscall per turn
      // instead of one per request, on both ends of the connection.
      this.out.push(encodeRequestHeader(req, data.length), data)
      this.outBytes += 8 + data.length
      if (!this.flushScheduled) {
        this.flushScheduled = true
        setImmediate(() => this.flush())
      }
    })
  }

  private flush(): void {
    this.flushScheduled = false
    const out = this.out
    const bytes = this.outBytes
    this.out = []
    this.outBytes = 0
    if (out.length > 0 && !this.socket.destroyed) this.socket.write(Buffer.concat(out, bytes))
  }

  close(): void {
    this.socket.destroy()
  }
}

async function benchPlover(root: string): Promise<RunResult[]> {
  const ports = await freePorts(6)
  const leaders = new Map<number, number>()
  const procs: ChildProcess[] = []
  const results: RunResult[] = []
  const clients = new Map<number, PloverClient>()
  try {
    for (const id of [1, 2, 3]) {
      const cfg = {
        id,
        dir: join(root, `plover-${id}`),
        port: ports[id - 1],
        clientPort: ports[id + 2],
        peers: [1, 2, 3].filter((p) => p !== id).map((p) => [p, ports[p - 1]]),
        tickMs: Number(values['tick-ms']),
        electionTicks: Number(values['election-ticks']),
        heartbeatTicks: Number(values['heartbeat-ticks']),
        walIo: values['wal-io'],
      }
      const child = fork(join(here, 'replica-server.ts'), [JSON.stringify(cfg)], {
        execArgv: [
          '--import',
          'tsx',
          ...(process.env.BENCH_CPU_PROF
            ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`]
            : []),
        ],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      })
      procs.push(child)
      child.on('message', (m: { type: string; leader?: number }) => {
        if (m.type === 'leader') leaders.set(id, m.leader!)
      })
      await new Promise<void>((resolve, reject) => {
        child.on('message', (m: { type: string }) => m.type === 'ready' && resolve())
        child.once('exit', (c) => reject(new Error(`replica ${id} exited (${c})`)))
      })
    }
    for (const id of [1, 2, 3]) clients.set(id, await PloverClient.connect(ports[id + 2]))
    const leader = async (): Promise<number> => {
      for (const deadline = Date.now() + 20_000; Date.now() < deadline; ) {
        const ls = [...leaders.values()]
        if (ls.length === 3 && ls[0] !== 0 && ls.every((l) => l === ls[0])) return ls[0]
        await new Promise((r) => setTimeout(r, 20))
      }
      throw new Error('no Plover leader')
    }
    const prewarm = new Uint8Array(sizes[0]).fill(0x61)
    await closedLoop('plover', sizes[0], 16, 0, prewarmMs, async () =>
      clients.get(leaders.get(1) || (await leader()))!.propose(prewarm),
    )
    for (const size of sizes) {
      for (const conc of concurrencies) {
        await leader()
        const data = new Uint8Array(size).fill(0x61)
        // Follow leadership changes (an election under CPU starvation counts as errors/latency).
        const op = async () => {
          const l = leaders.get(1) || (await leader())
          return clients.get(l)!.propose(data)
        }
        const r = await closedLoop('plover', size, conc, warmupMs, durationMs, op)
        results.push(r)
        console.error(
          `plover size=${size} c=${conc}: ${r.opsPerSec.toFixed(0)}/s p50=${r.p50Ms.toFixed(2)}ms p99=${r.p99Ms.toFixed(2)}ms errors=${r.errors}`,
        )
      }
    }
    return results
  } finally {
    for (const c of clients.values()) c.close()
    // Ask for a clean close (flushes profiles with BENCH_CPU_PROF), then SIGKILL stragglers.
    await Promise.all(
      procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null) return resolve()
            const timer = setTimeout(() => p.kill('SIGKILL'), 3000)
            p.once('exit', () => {
              clearTimeout(timer)
              resolve()
            })
            p.send({ type: 'close' })
          }),
      ),
    )
  }
}

async function benchEtcd(root: string): Promise<{ results: RunResult[]; version: string }> {
  const ports = await freePorts(6)
  let cluster: EtcdCluster | undefined
  const results: RunResult[] = []
  try {
    cluster = await startEtcd(join(root, 'etcd'), ports)
    const client = await leaderClient(cluster)
    try {
      const prewarm = Buffer.alloc(sizes[0], 0x61)
      let w = 0
      await closedLoop('etcd', sizes[0], 16, 0, prewarmMs, () =>
        client
          .put(`bench/${w++ % 1000}`)
          .value(prewarm)
          .then(
            () => true,
            () => false,
          ),
      )
      for (const size of sizes) {
        for (const conc of concurrencies) {
          const value = Buffer.alloc(size, 0x61)
          let k = 0
          const op = () =>
            client
              .put(`bench/${k++ % 1000}`)
              .value(value)
              .then(
                () => true,
                () => false,
              )
          const r = await closedLoop('etcd', size, conc, warmupMs, durationMs, op)
          results.push(r)
          console.error(
            `etcd   size=${size} c=${conc}: ${r.opsPerSec.toFixed(0)}/s p50=${r.p50Ms.toFixed(2)}ms p99=${r.p99Ms.toFixed(2)}ms errors=${r.errors}`,
          )
        }
      }
    } finally {
      client.close()
    }
    return { results, version: cluster.version }
  } finally {
    stopEtcd(cluster)
  }
}

function table(plover: RunResult[], etcd: RunResult[]): string {
  const rows = [
    [
      'size',
      'conc',
      'plover ops/s',
      'p50 ms',
      'p99 ms',
      'etcd ops/s',
      'p50 ms',
      'p99 ms',
      'thr ×',
      'p99 ratio',
    ],
  ]
  for (const p of plover) {
    const e = etcd.find((x) => x.size === p.size && x.concurrency === p.concurrency)
    rows.push([
      String(p.size),
      String(p.concurrency),
      p.opsPerSec.toFixed(0),
      p.p50Ms.toFixed(2),
      p.p99Ms.toFixed(2),
      e ? e.opsPerSec.toFixed(0) : '-',
      e ? e.p50Ms.toFixed(2) : '-',
      e ? e.p99Ms.toFixed(2) : '-',
      e ? (p.opsPerSec / e.opsPerSec).toFixed(2) : '-',
      e ? (p.p99Ms / e.p99Ms).toFixed(2) : '-',
    ])
  }
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)))
  return rows.map((r) => r.map((c, i) => c.padStart(w[i])).join('  ')).join('\n')
}

async function main(): Promise<void> {
  if (!values['no-build']) {
    // The replica processes import @plover/consensus from dist/.
    const b = spawnSync('pnpm', ['-C', join(benchRoot, '..', 'packages', 'consensus'), 'build'], {
      stdio: 'inherit',
    })
    if (b.status !== 0) console.error('warning: consensus build reported errors; using whatever dist/ holds')
  }
  const root = mkdtempSync(join(tmpdir(), 'plover-bench-'))
  try {
    const plover = await benchPlover(root)
    const etcd = values['skip-etcd'] ? { results: [], version: 'skipped' } : await benchEtcd(root)
    console.log(table(plover, etcd.results))
    const at64 = (rs: RunResult[], size: number) => rs.find((r) => r.concurrency === 64 && r.size === size)
    const target = sizes.map((size) => {
      const p = at64(plover, size)
      const e = at64(etcd.results, size)
      return p && e
        ? {
            size,
            throughputRatio: p.opsPerSec / e.opsPerSec,
            p99Ratio: p.p99Ms / e.p99Ms,
            met: p.opsPerSec >= 5 * e.opsPerSec && p.p99Ms <= e.p99Ms / 2,
          }
        : { size, met: null }
    })
    console.log('\ntarget at 64 proposers: >= 5x etcd throughput and p99 <= 0.5x etcd')
    for (const x of target) console.log(JSON.stringify(x))
    const out = {
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
      config: {
        prewarmMs,
        durationMs,
        warmupMs,
        concurrencies,
        sizes,
        tickMs: Number(values['tick-ms']),
        electionTicks: Number(values['election-ticks']),
        heartbeatTicks: Number(values['heartbeat-ticks']),
        walIo: values['wal-io'],
      },
      etcdVersion: etcd.version,
      plover,
      etcd: etcd.results,
      target,
    }
    if (values['skip-etcd']) {
      // No anchor measured: don't overwrite the comparison in results/.
      console.log('\n--skip-etcd: results/consensus.json left unchanged')
      return
    }
    mkdirSync(join(benchRoot, 'results'), { recursive: true })
    writeFileSync(join(benchRoot, 'results', 'consensus.json'), `${JSON.stringify(out, null, 2)}\n`)
    console.log(`\nwrote ${join(benchRoot, 'results', 'consensus.json')}`)
  } finally {
    rmSync(root, { recursive: true, force: true })
  }
}

await main()
