// Turns the sync reports and load results of one run into one row of the comparison.
import type { LoadResult } from './kv-load.js'
import type { SyncResult } from './sim-pair.js'

export interface Row {
  readonly vm: 'SimulatedVm' | 'QEMU redis'
  readonly policy: string
  /** null: not measured in this run (see `note`). */
  readonly syncs: number | null
  readonly syncsPerSec: number | null
  /** Σ identical / Σ union pages over the run's syncs (primary's reports). */
  readonly identicalPct: number | null
  /** Sync-link bytes in both directions per sync. */
  readonly bytesPerSync: number | null
  readonly divergentPagesPerSync: number | null
  readonly pauseMsMean: number | null
  readonly opsPerSec: number | null
  readonly p50Ms: number | null
  readonly p99Ms: number | null
  readonly reasons: Record<string, number>
  readonly failures: number
  readonly note?: string
}

export function summarize(
  vm: Row['vm'],
  policy: string,
  syncs: readonly SyncResult[],
  load: LoadResult,
  reasons: Record<string, number>,
  failures: number,
): Row {
  const n = syncs.length
  const sum = (f: (r: SyncResult) => number) => syncs.reduce((s, r) => s + f(r), 0)
  const union = sum((r) => r.primary.unionPages)
  return {
    vm,
    policy,
    syncs: n,
    syncsPerSec: n / load.seconds,
    identicalPct: union ? (sum((r) => r.primary.identicalPages) / union) * 100 : 0,
    bytesPerSync: n ? sum((r) => r.primary.bytesSent + r.backup.bytesSent) / n : 0,
    divergentPagesPerSync: n ? sum((r) => r.primary.divergentPages) / n : 0,
    pauseMsMean: n ? sum((r) => r.primary.pauseMs) / n : 0,
    opsPerSec: load.opsPerSec,
    p50Ms: load.p50Ms,
    p99Ms: load.p99Ms,
    reasons,
    failures,
  }
}

export function notMeasured(vm: Row['vm'], policy: string, note: string): Row {
  return {
    vm,
    policy,
    syncs: null,
    syncsPerSec: null,
    identicalPct: null,
    bytesPerSync: null,
    divergentPagesPerSync: null,
    pauseMsMean: null,
    opsPerSec: null,
    p50Ms: null,
    p99Ms: null,
    reasons: {},
    failures: 0,
    note,
  }
}

export function printTable(rows: readonly Row[]): void {
  const cols: [string, (r: Row) => string][] = [
    ['vm', (r) => r.vm],
    ['policy', (r) => r.policy],
    ['syncs', (r) => fmt(r.syncs, 0)],
    ['syncs/s', (r) => fmt(r.syncsPerSec, 1)],
    ['identical %', (r) => fmt(r.identicalPct, 1)],
    ['KiB/sync', (r) => fmt(r.bytesPerSync === null ? null : r.bytesPerSync / 1024, 1)],
    ['divergent pg/sync', (r) => fmt(r.divergentPagesPerSync, 1)],
    ['pause ms', (r) => fmt(r.pauseMsMean, 1)],
    ['ops/s', (r) => fmt(r.opsPerSec, 0)],
    ['p50 ms', (r) => fmt(r.p50Ms, 1)],
    ['p99 ms', (r) => fmt(r.p99Ms, 1)],
    [
      'reasons / note',
      (r) =>
        r.note ??
        (Object.entries(r.reasons)
          .map(([k, v]) => `${k}:${v}`)
          .join(' ') ||
          '-'),
    ],
  ]
  const cells = rows.map((r) => cols.map(([, f]) => f(r)))
  const widths = cols.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i].length)))
  const line = (c: string[]) =>
    c.map((x, i) => (i < 2 || i === c.length - 1 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join(' | ')
  console.log(line(cols.map(([h]) => h)))
  console.log(widths.map((w) => '-'.repeat(w)).join('-|-'))
  for (const c of cells) console.log(line(c))
}

function fmt(x: number | null, digits: number): string {
  return x === null ? 'not measured' : x.toFixed(digits)
}
