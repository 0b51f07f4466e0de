import type { IoCounters } from '../probes/block-io-probe.js'
import type { OutputCounters } from '../probes/output-probe.js'

/** One reading of all probes at one instant: the policy's input. Counters are cumulative. */
export interface Observation {
  /** Monotonic time in ms (performance.now() in the monitor; any clock in tests). */
  readonly atMs: number
  /** Cumulative CPU time of the VM process, ns. */
  readonly cpuNs: number
  /** Cumulative time its threads waited for a CPU while runnable, ns (absent if unknown). */
  readonly waitNs?: number
  /** Threads running or waiting for a CPU at `atMs` (absent if unknown). */
  readonly runnable?: number
  /** `undefined`: no block-I/O probe; `null`: the probe failed this time (treated as "not quiet"). */
  readonly io?: IoCounters | null
  /** `undefined`: no output probe; `null`: the probe failed this time. */
  readonly output?: OutputCounters | null
}

/** What happened between two consecutive observations; what `sync-due` carries as evidence. */
export interface IntervalSample {
  readonly startMs: number
  readonly endMs: number
  /** CPU time used over the interval divided by its length: 1 = one core fully busy. */
  readonly cpuRateCores: number
  /**
   * Runqueue wait booked over the interval, in cores; null when the probe cannot tell. Evidence
   * only: it is booked when a thread finally runs, and on a busy host mostly measures the host.
   */
  readonly waitRateCores: number | null
  /** Threads running or runnable at the end of the interval; null when unknown. */
  readonly runnableAtEnd: number | null
  /** rd+wr bytes over the interval; null when unknown (no probe reading at either end). */
  readonly ioBytes: number | null
  readonly ioOps: number | null
  readonly framesOut: number | null
  readonly heldBytes: number | null
  readonly oldestHeldAgeMs: number | null
  /**
   * Whether the interval counted as idle — CPU rate within the band, disk quiet and, when the
   * baseline says the VM's threads are normally asleep at rest, no thread runnable at its end;
   * null without a baseline.
   */
  readonly idle: boolean | null
}

/** Derives the interval between two observations (pure). */
export function intervalBetween(
  prev: Observation,
  cur: Observation,
  ceilingCores: number | null,
  ioQuietBytes: number,
  runnableMeansBusy = false,
): IntervalSample {
  const durationMs = cur.atMs - prev.atMs
  const perMs = (ns: number) => (durationMs > 0 ? ns / 1e6 / durationMs : 0)
  const cpuRateCores = perMs(cur.cpuNs - prev.cpuNs)
  const waitRateCores =
    cur.waitNs !== undefined && prev.waitNs !== undefined ? perMs(cur.waitNs - prev.waitNs) : null
  const ioKnown = cur.io != null && prev.io != null
  const ioBytes = ioKnown ? cur.io!.rdBytes - prev.io!.rdBytes + (cur.io!.wrBytes - prev.io!.wrBytes) : null
  const ioOps = ioKnown ? cur.io!.rdOps - prev.io!.rdOps + (cur.io!.wrOps - prev.io!.wrOps) : null
  const outKnown = cur.output != null && prev.output != null
  // No probe configured at all counts as quiet; a configured probe that failed does not.
  const ioQuiet = cur.io === undefined ? true : ioBytes !== null && ioBytes <= ioQuietBytes
  const runnableAtEnd = cur.runnable ?? null
  // WHY not run + wait: the kernel books runqueue wait late and in lumps, and on a contended host
  // an idle guest's few wake-ups wait far longer than they run (measured: p90 0.36 cores of wait
  // vs 0.10 of run at rest), so wait mostly measures the host. A starved busy guest shows as
  // runnable instead.
  const cpuQuiet =
    ceilingCores !== null && cpuRateCores <= ceilingCores && !(runnableMeansBusy && (runnableAtEnd ?? 0) > 0)
  return {
    startMs: prev.atMs,
    endMs: cur.atMs,
    cpuRateCores,
    waitRateCores,
    runnableAtEnd,
    ioBytes,
    ioOps,
    framesOut: outKnown ? cur.output!.framesOut - prev.output!.framesOut : null,
    heldBytes: cur.output ? cur.output.heldBytes : null,
    oldestHeldAgeMs: cur.output ? cur.output.oldestHeldAgeMs : null,
    idle: ceilingCores === null ? null : cpuQuiet && ioQuiet,
  }
}
