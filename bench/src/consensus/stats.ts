export interface RunResult {
  readonly system: 'plover' | 'etcd'
  readonly size: number
  readonly concurrency: number
  readonly ops: number
  readonly errors: number
  readonly seconds: number
  readonly opsPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

/**
 * Closed-loop load: `concurrency` workers each issue one request, await it, repeat. Latencies
 * of requests completing after `warmupMs` and before `warmupMs + durationMs` are recorded.
 */
export async function closedLoop(
  system: RunResult['system'],
  size: number,
  concurrency: number,
  warmupMs: number,
  durationMs: number,
  op: () => Promise<boolean>,
): Promise<RunResult> {
  const lat: number[] = []
  let errors = 0
  const t0 = performance.now()
  const start = t0 + warmupMs
  const end = start + durationMs
  const worker = async () => {
    for (;;) {
      const s = performance.now()
      if (s >= end) return
      const ok = await op()
      const e = performance.now()
      if (s >= start && e <= end) {
        if (ok) lat.push(e - s)
        else errors++
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  const sorted = Float64Array.from(lat).sort()
  const seconds = durationMs / 1000
  return {
    system,
    size,
    concurrency,
    ops: lat.length,
    errors,
    seconds,
    opsPerSec: lat.length / seconds,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
  }
}
