// The QEMU redis-guest rows of the comparison: examples/qemu-redis's orchestrator (two QEMU redis
// guests + witness, consensus-ordered inputs, held outputs, VSMR syncs, no failover) under
// redis-benchmark (SET + GET side by side), syncing on idle (the idle monitor, as the example
// does) or every 25 / 100 ms; anchor: the same guest unreplicated on the same bridge/tap/namespace.
// Only with --qemu (root, QEMU, guest image; about a minute per row): otherwise the rows say so.
// Latency: p50/p99 are medians over redis-benchmark iterations (see bench/src/e2e/harness.ts).
import { type RunOutcome, type RunSpec, runConfig } from '../e2e/harness.js'
import { notMeasured, type Row } from './summarize.js'

export interface QemuRowsOptions {
  readonly run: boolean
  readonly seconds: number
  readonly memoryMiB?: number
  readonly clients?: number
}

export interface QemuRowsResult {
  readonly rows: Row[]
  readonly outcomes: RunOutcome[]
}

const POLICIES = [
  { policy: 'unreplicated', kind: 'unreplicated-direct' as const },
  { policy: 'idle', kind: 'plover' as const },
  { policy: 'fixed-25ms', kind: 'plover' as const, fixedMs: 25 },
  { policy: 'fixed-100ms', kind: 'plover' as const, fixedMs: 100 },
]

export async function qemuRows(o: QemuRowsOptions = { run: false, seconds: 0 }): Promise<QemuRowsResult> {
  if (!o.run) {
    const note = 'not measured in this run: pass --qemu (root, QEMU, guest image; ~1 min per row)'
    return { rows: POLICIES.map((p) => notMeasured('QEMU redis', p.policy, note)), outcomes: [] }
  }
  const rows: Row[] = []
  const outcomes: RunOutcome[] = []
  for (const p of POLICIES) {
    const spec: RunSpec = {
      label: `QEMU redis ${p.policy}`,
      kind: p.kind,
      ...(p.kind === 'plover' ? { syncMode: 'vsmr' as const } : {}),
      ...(p.fixedMs ? { fixedSyncIntervalMs: p.fixedMs } : {}),
      loadS: o.seconds,
      memoryMiB: o.memoryMiB ?? 128,
      clients: o.clients ?? 4,
      // ~100× lower throughput when replicated: smaller iterations so some complete.
      iterationRequests: p.kind === 'plover' ? 20 : 1000,
    }
    console.log(`• QEMU redis, ${p.policy}`)
    const r = await runConfig(spec, (l) => console.log(l))
    outcomes.push(r)
    if (!r.ok) {
      rows.push(notMeasured('QEMU redis', p.policy, `FAILED: ${r.error}`))
      continue
    }
    const s = r.sync
    rows.push({
      vm: 'QEMU redis',
      policy: p.policy,
      syncs: s?.syncs ?? 0,
      syncsPerSec: s?.syncsPerS ?? 0,
      identicalPct: s?.identicalPct ?? 0,
      bytesPerSync: s?.bytesPerSync ?? 0,
      divergentPagesPerSync: s?.sentPagesPerSync ?? 0,
      pauseMsMean: s?.pauseMeanMs ?? 0,
      opsPerSec: r.servedPerS ?? null,
      p50Ms: Number.isFinite(r.p50MsMedian) ? (r.p50MsMedian ?? null) : null,
      p99Ms: Number.isFinite(r.p99MsMedian) ? (r.p99MsMedian ?? null) : null,
      reasons: {},
      failures: 0,
      ...(p.kind === 'plover' ? {} : { note: 'anchor (no replication)' }),
    })
  }
  return { rows, outcomes }
}
