// Hashing throughput of PageHasher beside a plain copy of the same bytes, in the same run.
// Target (issue 5): hashing >= 80 % of copy speed per core, scaling with cores.
//
//   cd bench && node --import tsx src/vmsync/hashing.ts [--mib 256] [--rounds 5]
//
// Needs @plover/vmsync built (pnpm -C packages/vmsync build): the pool's workers run dist/*.js.
import { randomFillSync } from 'node:crypto'
import { closeSync, mkdirSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { hashPage, type MemorySource, PageHasher } from '@plover/vmsync'

const { values } = parseArgs({
  options: { mib: { type: 'string', default: '256' }, rounds: { type: 'string', default: '5' } },
})
const MIB = Number(values.mib)
const ROUNDS = Math.max(1, Number(values.rounds))
const BYTES = MIB * 1024 * 1024
const PAGE = 4096
const CHUNK = 2 << 20

/** Median of samples (ms). */
function median(ms: number[]): number {
  const sorted = [...ms].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

async function once(fn: () => unknown): Promise<number> {
  const t0 = process.hrtime.bigint()
  await fn()
  return Number(process.hrtime.bigint() - t0) / 1e6
}

/**
 * WHY interleaved rounds: this host is shared (other builds and tests run beside the bench), so
 * each round measures every case back to back and the anchors see the same load as the hashing.
 */
async function interleaved(cases: Record<string, () => unknown>): Promise<Record<string, number>> {
  const samples: Record<string, number[]> = {}
  for (let round = 0; round <= ROUNDS; round++) {
    for (const [name, fn] of Object.entries(cases)) {
      const ms = await once(fn)
      if (round > 0) (samples[name] ??= []).push(ms) // round 0 warms up
    }
  }
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]))
}

async function timeIt(fn: () => unknown): Promise<number> {
  return (await interleaved({ x: fn })).x
}

const gbps = (ms: number) => BYTES / ms / 1e6

// --- data: one random buffer, shared (SimulatedVm-style) and as a /dev/shm file (QEMU-style) ---
const sab = new SharedArrayBuffer(BYTES)
const mem = Buffer.from(sab)
for (let o = 0; o < BYTES; o += 64 << 20) randomFillSync(mem, o, Math.min(64 << 20, BYTES - o))
const path = `/dev/shm/plover-bench-hashing-${process.pid}.bin`
writeFileSync(path, mem)
process.on('exit', () => rmSync(path, { force: true }))
const shared: MemorySource = { kind: 'shared', buffer: sab }
const file: MemorySource = { kind: 'file', path, offset: 0, size: BYTES }

// --- anchors: plain copies of the same bytes, single thread, reused (pre-touched) destinations ---
const dst = Buffer.alloc(BYTES)
const chunk = Buffer.alloc(CHUNK)
const memcopy = () => mem.copy(dst)
const fileRead = () => {
  const fd = openSync(path, 'r')
  try {
    for (let at = 0; at < BYTES; at += CHUNK) readSync(fd, chunk, 0, Math.min(CHUNK, BYTES - at), at)
  } finally {
    closeSync(fd)
  }
}

// --- PageHasher, 1 thread and N threads, all pages, measured in the same rounds as the anchors ---
const maxThreads = availableParallelism()
const threadCounts = [...new Set([1, maxThreads])]
// File sources both ways: from a memory mapping (@plover/mapped-file, the default) and with pread.
const hashers = new Map(threadCounts.map((n) => [n, new PageHasher({ threads: n, fileReads: 'mmap' })]))
const preadHashers = new Map(threadCounts.map((n) => [n, new PageHasher({ threads: n, fileReads: 'pread' })]))
const out = Buffer.alloc((BYTES / PAGE) * 16)
const cases: Record<string, () => unknown> = { memcopy, fileRead }
for (const [n, h] of hashers) {
  cases[`shared/${n}`] = () => h.hash(shared, 'all', out)
  cases[`file-mmap/${n}`] = () => h.hash(file, 'all', out)
  cases[`file-pread/${n}`] = () => preadHashers.get(n)!.hash(file, 'all', out)
}
const loadBefore = loadavg()[0]
const med = await interleaved(cases)
const loadAfter = loadavg()[0]
for (const h of [...hashers.values(), ...preadHashers.values()]) await h.close()
const memcopyMs = med.memcopy
const fileReadMs = med.fileRead

interface Row {
  source: 'shared' | 'file-mmap' | 'file-pread'
  threads: number
  ms: number
  gbps: number
  anchor: 'memcopy' | 'file-read'
  anchorGbps: number
  /** hashing GB/s per thread / single-thread anchor GB/s */
  perCoreRatio: number
}
const rows: Row[] = []
for (const threads of threadCounts) {
  for (const [source, anchorMs, anchor] of [
    ['shared', memcopyMs, 'memcopy'],
    ['file-mmap', fileReadMs, 'file-read'],
    ['file-pread', fileReadMs, 'file-read'],
  ] as const) {
    const ms = med[`${source}/${threads}`]
    rows.push({
      source,
      threads,
      ms,
      gbps: gbps(ms),
      anchor,
      anchorGbps: gbps(anchorMs),
      perCoreRatio: gbps(ms) / threads / gbps(anchorMs),
    })
  }
}

// --- diagnostics: where the time goes on one thread (native call floor vs hashing itself) ---
const tiny = Buffer.alloc(16)
const callNs =
  ((await timeIt(() => {
    for (let i = 0; i < 65536; i++) hashPage(tiny)
  })) *
    1e6) /
  65536
const block = 1 << 20
const bulkMs = await timeIt(() => {
  for (let at = 0; at < BYTES; at += block) hashPage(mem.subarray(at, at + block))
})
const perPageMs = await timeIt(() => {
  for (let at = 0; at < BYTES; at += PAGE) hashPage(mem.subarray(at, at + PAGE))
})

// --- report ---
const pct = (x: number) => `${(x * 100).toFixed(0)} %`
console.log(
  `PageHasher throughput, ${MIB} MiB, ${BYTES / PAGE} pages of 4 KiB, median of ${ROUNDS} interleaved rounds, ` +
    `load average ${loadBefore.toFixed(1)} -> ${loadAfter.toFixed(1)} on ${maxThreads} cores`,
)
console.log(
  `anchors (1 thread): Buffer.copy ${gbps(memcopyMs).toFixed(2)} GB/s (${memcopyMs.toFixed(1)} ms), ` +
    `file read ${gbps(fileReadMs).toFixed(2)} GB/s (${fileReadMs.toFixed(1)} ms)`,
)
console.log('source      threads   ms      GB/s   anchor     anchor GB/s  per-core ratio  total vs anchor')
for (const r of rows) {
  console.log(
    `${r.source.padEnd(7)} ${String(r.threads).padStart(7)} ${r.ms.toFixed(1).padStart(7)} ${r.gbps.toFixed(2).padStart(7)}   ` +
      `${r.anchor.padEnd(10)} ${r.anchorGbps.toFixed(2).padStart(11)}  ${pct(r.perCoreRatio).padStart(14)}  ` +
      `${pct(r.gbps / r.anchorGbps).padStart(15)}`,
  )
}
console.log(
  `diagnostics (main thread): one XXHash128.hash call on 16 B costs ${callNs.toFixed(0)} ns; ` +
    `per-page loop ${gbps(perPageMs).toFixed(2)} GB/s; the same bytes in 1 MiB blocks ${gbps(bulkMs).toFixed(2)} GB/s`,
)
// Per-core target judged on the 1-thread rows; scaling = N-thread over 1-thread throughput.
// Judged on the read paths PageHasher uses by default (shared memory, mapped files); pread is the
// fallback without the mapping addon and is printed beside them.
const single = rows.filter((r) => r.threads === 1 && r.source !== 'file-pread')
const targetMet = single.every((r) => r.perCoreRatio >= 0.8)
const scaling = Object.fromEntries(
  (['shared', 'file-mmap', 'file-pread'] as const).map((src) => {
    const one = rows.find((r) => r.source === src && r.threads === 1)!
    const many = rows.find((r) => r.source === src && r.threads === maxThreads)!
    return [src, many.gbps / one.gbps]
  }),
)
console.log(
  `target per-core ratio >= 80 % (1 thread, default read paths): ${targetMet ? 'met' : 'NOT met'} ` +
    `(${single.map((r) => `${r.source} ${pct(r.perCoreRatio)}`).join(', ')}); ` +
    `scaling ${maxThreads} threads vs 1: ${Object.entries(scaling)
      .map(([k, v]) => `${k} ${v.toFixed(2)}x`)
      .join(', ')}`,
)
const result = {
  bench: 'vmsync-hashing',
  date: new Date().toISOString(),
  node: process.version,
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: maxThreads,
  bytes: BYTES,
  pages: BYTES / PAGE,
  rounds: ROUNDS,
  loadAverage1m: { before: loadBefore, after: loadAfter },
  hash: 'XXH3-128 (xxhash-addon XXHash128.hash) per 4 KiB page',
  anchors: {
    memcopy: { ms: memcopyMs, gbps: gbps(memcopyMs) },
    fileRead: { ms: fileReadMs, gbps: gbps(fileReadMs), chunkBytes: CHUNK },
  },
  target: 'per-core ratio >= 0.8',
  targetMet,
  scaling,
  rows,
  diagnostics: {
    nsPerNativeCall16B: callNs,
    perPageLoopGbps: gbps(perPageMs),
    oneMiBBlocksGbps: gbps(bulkMs),
  },
}
const outPath = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'results', 'vmsync-hashing.json')
mkdirSync(dirname(outPath), { recursive: true })
writeFileSync(outPath, `${JSON.stringify(result, null, 2)}\n`)
console.log(JSON.stringify(result))
console.log(`wrote ${outPath}`)
