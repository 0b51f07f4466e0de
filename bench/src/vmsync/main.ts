// VSMR vs Remus mode on the same SimulatedVm workload: pages and bytes per sync, identical-page
// share, pause time. Both modes run the full vmsync stack (in-memory ordered log, authenticated
// TCP sync link on loopback, PageHasher worker pool, input coordinator, output guard) with the
// same VM seeds and the same request stream, one after the other.
//
//   cd bench && pnpm vmsync [--pages 16384] [--rounds 20] [--ops 2000] [--keys 5000]
//                           [--qemu [--qemu-load-s 30] [--qemu-memory 256]]   (QEMU rows: ./qemu.ts)
//
// Needs @plover/vmsync built (pnpm -C packages/vmsync build). Hashing throughput against a
// memory copy is the other half of this bench: src/vmsync/hashing.ts (results/vmsync-hashing.json).
import { mkdirSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import {
  connectSyncLink,
  encodeKvRequest,
  KvOp,
  MemoryLogCluster,
  PageHasher,
  SimulatedVm,
  type SyncLink,
  SyncLinkServer,
  SyncMode,
  type SyncReport,
  type TransferMode,
  VmReplica,
} from '@plover/vmsync'
import { runVmsyncQemu } from './qemu.js'

const { values } = parseArgs({
  options: {
    pages: { type: 'string', default: '16384' },
    rounds: { type: 'string', default: '20' },
    ops: { type: 'string', default: '2000' },
    keys: { type: 'string', default: '5000' },
    seed: { type: 'string', default: '1' },
    qemu: { type: 'boolean', default: false },
    'qemu-load-s': { type: 'string', default: '30' },
    'qemu-memory': { type: 'string', default: '256' },
  },
})
const PAGES = Number(values.pages)
const ROUNDS = Number(values.rounds)
const OPS = Number(values.ops)
const KEYS = Number(values.keys)
const SEED = Number(values.seed)

function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

function pctl(xs: number[], p: number): number {
  if (xs.length === 0) return 0
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
}
const mean = (xs: number[]) => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length)

interface SyncRow {
  readonly epoch: number
  readonly dirtyPrimary: number
  readonly dirtyBackup: number
  readonly unionPages: number
  readonly identicalPages: number
  readonly identicalPct: number
  readonly pagesSent: number
  /** Link payload bytes, both directions (pages + sets + hashes + device state). */
  readonly bytes: number
  readonly pauseMs: number
  readonly syncMs: number
  readonly hashMBps: number
}

async function linkPair(psk: Buffer): Promise<{ a: SyncLink; b: SyncLink; close: () => Promise<void> }> {
  const server = new SyncLinkServer({ psk })
  const { port } = await server.listen(0)
  const accepted = new Promise<SyncLink>((resolve) => server.once('link', resolve))
  const a = await connectSyncLink({ host: '127.0.0.1', port, psk })
  const b = await accepted
  return {
    a,
    b,
    close: async () => {
      a.close()
      b.close()
      await server.close()
    },
  }
}

function completed(r: VmReplica): Promise<SyncReport> {
  return new Promise((resolve) => r.once('sync-completed', resolve))
}

async function runMode(mode: TransferMode): Promise<{ rows: SyncRow[]; full: SyncReport }> {
  // One pool per replica, as in two processes (they share this host's 2 cores here).
  const phasher = new PageHasher()
  const bhasher = new PageHasher()
  const cluster = new MemoryLogCluster()
  const plog = cluster.join()
  const blog = cluster.join()
  cluster.setLeader(plog)
  // Same seeds in both modes: the same "hardware" nondeterminism, the same workload.
  const pvm = new SimulatedVm({ pageCount: PAGES, seed: SEED * 100 + 1 })
  const bvm = new SimulatedVm({ pageCount: PAGES, seed: SEED * 100 + 2 })
  await pvm.resume()
  await bvm.resume()
  const common = { mode, quietMaxMs: 200, peerTimeoutMs: 30_000 }
  const primary = new VmReplica({
    ...common,
    hasher: phasher,
    log: plog,
    vm: pvm,
    tracker: pvm.dirtyTracker,
    role: 'primary',
    quiesce: () => pvm.drained(),
  })
  const backup = new VmReplica({
    ...common,
    hasher: bhasher,
    log: blog,
    vm: bvm,
    tracker: bvm.dirtyTracker,
    role: 'backup',
    quiesce: () => bvm.drained(),
  })
  const link = await linkPair(Buffer.from('bench-vmsync-pre-shared-key-0123'))
  primary.attachLink(link.a)
  backup.attachLink(link.b)
  primary.on('sync-failed', (f) => console.error(`[${mode}] primary sync ${f.epoch} failed: ${f.reason}`))
  backup.on('sync-failed', (f) => console.error(`[${mode}] backup sync ${f.epoch} failed: ${f.reason}`))

  async function sync(): Promise<{ p: SyncReport; b: SyncReport }> {
    const pDone = completed(primary)
    const bDone = completed(backup)
    const committed = new Promise<number>((resolve) => primary.primary!.once('committed', resolve))
    await primary.requestSync()
    const [p, b] = await Promise.all([pDone, bDone])
    await committed
    return { p, b }
  }

  const full = (await sync()).p
  const rand = rng(SEED)
  let requestId = 1
  const rows: SyncRow[] = []
  for (let round = 0; round < ROUNDS; round++) {
    // redis-benchmark-like: 50 % SET, 50 % GET over a fixed key space, 64..512-byte values.
    for (let i = 0; i < OPS; i++) {
      const key = `key:${Math.floor(rand() * KEYS)}`
      if (rand() < 0.5) {
        const value = 'x'.repeat(64 + Math.floor(rand() * 448))
        primary.pushInput(encodeKvRequest({ op: KvOp.Set, clientId: 1, requestId: requestId++, key, value }))
      } else {
        primary.pushInput(encodeKvRequest({ op: KvOp.Get, clientId: 1, requestId: requestId++, key }))
      }
    }
    await primary.batcher.drain()
    await primary.delivery.idle()
    await pvm.drained()
    const { p, b } = await sync()
    rows.push({
      epoch: p.epoch,
      dirtyPrimary: p.dirtyPages,
      dirtyBackup: p.peerDirtyPages,
      unionPages: p.unionPages,
      identicalPages: p.identicalPages,
      identicalPct: p.identicalPct,
      pagesSent: p.divergentPages,
      bytes: p.bytesSent + b.bytesSent,
      pauseMs: p.pauseMs,
      syncMs: p.totalMs,
      hashMBps: p.hashMBps,
    })
  }
  await primary.close()
  await backup.close()
  await link.close()
  await pvm.close()
  await bvm.close()
  await phasher.close()
  await bhasher.close()
  return { rows, full }
}

function summarize(rows: SyncRow[]) {
  const union = rows.reduce((a, r) => a + r.unionPages, 0)
  const identical = rows.reduce((a, r) => a + r.identicalPages, 0)
  return {
    syncs: rows.length,
    dirtyPagesPerSync: mean(rows.map((r) => r.dirtyPrimary)),
    unionPagesPerSync: mean(rows.map((r) => r.unionPages)),
    pagesSentPerSync: mean(rows.map((r) => r.pagesSent)),
    bytesPerSync: mean(rows.map((r) => r.bytes)),
    identicalPct: union === 0 ? 0 : (identical / union) * 100,
    pauseMsP50: pctl(
      rows.map((r) => r.pauseMs),
      50,
    ),
    pauseMsP95: pctl(
      rows.map((r) => r.pauseMs),
      95,
    ),
    syncMsP50: pctl(
      rows.map((r) => r.syncMs),
      50,
    ),
    hashMBpsMean: mean(rows.filter((r) => r.hashMBps > 0).map((r) => r.hashMBps)),
  }
}

const load0 = loadavg()[0]
const results: Record<string, { summary: ReturnType<typeof summarize>; rows: SyncRow[]; fullSync: object }> =
  {}
for (const mode of ['vsmr', 'remus'] as const) {
  const { rows, full } = await runMode(mode)
  results[mode] = {
    summary: summarize(rows),
    rows,
    fullSync: {
      form: SyncMode[full.mode],
      pages: full.divergentPages,
      bytes: full.bytesSent,
      pauseMs: full.pauseMs,
    },
  }
}
const load1 = loadavg()[0]

const v = results.vsmr.summary
const r = results.remus.summary
const fmt = (n: number, d = 1) => n.toFixed(d)
console.log(
  `\nvmsync: VSMR vs Remus on SimulatedVm (${PAGES} pages = ${(PAGES * 4) / 1024} MiB, ${ROUNDS} syncs x ${OPS} ops, 50% SET / 50% GET, ${KEYS} keys)`,
)
console.log(
  'mode   | dirty/sync | union/sync | sent/sync | identical % | KiB/sync | pause p50 ms | pause p95 ms | sync p50 ms',
)
console.log(
  '-------|------------|------------|-----------|-------------|----------|--------------|--------------|------------',
)
for (const [name, s] of [
  ['VSMR', v],
  ['Remus', r],
] as const) {
  console.log(
    `${name.padEnd(6)} | ${fmt(s.dirtyPagesPerSync).padStart(10)} | ${fmt(s.unionPagesPerSync).padStart(10)} | ${fmt(s.pagesSentPerSync).padStart(9)} | ${fmt(s.identicalPct).padStart(11)} | ${fmt(s.bytesPerSync / 1024).padStart(8)} | ${fmt(s.pauseMsP50, 2).padStart(12)} | ${fmt(s.pauseMsP95, 2).padStart(12)} | ${fmt(s.syncMsP50, 2).padStart(10)}`,
  )
}
for (const [name, m] of [
  ['VSMR', 'vsmr'],
  ['Remus', 'remus'],
] as const) {
  const f = results[m].fullSync as { form: string; pages: number; bytes: number; pauseMs: number }
  console.log(
    `full sync of the fresh backup, ${name}: ${f.form}, ${f.pages} pages sent (${fmt(f.bytes / 1024)} KiB), primary pause ${fmt(f.pauseMs)} ms`,
  )
}
const bytesRatio = v.bytesPerSync === 0 ? Number.POSITIVE_INFINITY : r.bytesPerSync / v.bytesPerSync
console.log(`\nRemus bytes / VSMR bytes per sync: ${fmt(bytesRatio, 2)}x (target >= 10x on redis)`)
console.log(`identical dirty pages (VSMR): ${fmt(v.identicalPct)} % (target >= 95 % on redis)`)
console.log(
  `load average 1m: ${load0.toFixed(2)} -> ${load1.toFixed(2)} on ${availableParallelism()} cores (shared host)`,
)
const qemu = values.qemu
  ? await runVmsyncQemu({
      loadS: Number(values['qemu-load-s']),
      memoryMiB: Number(values['qemu-memory']),
      clients: 4,
    })
  : undefined
if (!qemu)
  console.log(
    '\nQEMU redis guest rows (VSMR vs Remus, 256 MiB): not run — pass --qemu (root), or pnpm vmsync:qemu.',
  )

const out = {
  bench: 'vmsync',
  date: new Date().toISOString(),
  node: process.version,
  cpu: cpus()[0]?.model,
  cores: availableParallelism(),
  loadAverage1m: { before: load0, after: load1 },
  workload: {
    vm: 'SimulatedVm',
    pages: PAGES,
    rounds: ROUNDS,
    opsPerRound: OPS,
    keys: KEYS,
    mix: '50% SET / 50% GET',
    seed: SEED,
  },
  link: 'authenticated TCP loopback (PSK + HMAC-SHA256 per frame)',
  vsmr: results.vsmr,
  remus: results.remus,
  remusOverVsmrBytes: bytesRatio,
  qemu: qemu ?? {
    measured: false,
    note: 'QEMU rows not run in this invocation: pnpm vmsync -- --qemu, or pnpm vmsync:qemu (results/vmsync-qemu.json)',
  },
}
const here = dirname(fileURLToPath(import.meta.url))
const file = join(here, '..', '..', 'results', 'vmsync.json')
mkdirSync(dirname(file), { recursive: true })
writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`)
console.log(`\nwrote ${file}`)
