import { percentile } from './percentile.js'

/**
 * The CPU rate of the VM when it has no work. WHY learned, not configured: an idle guest's
 * QEMU process burns a VM-specific amount of CPU (timer ticks, TCG housekeeping, virtio polling)
 * that depends on vCPUs, kernel HZ and the host; a fixed threshold would be wrong on every host
 * but the one it was tuned on.
 */
export interface IdleBaseline {
  /** The `percentile` of per-interval CPU rates measured at rest, in cores. */
  readonly rateCores: number
  readonly medianCores: number
  readonly percentile: number
  /**
   * Share of at-rest samples in which some thread was running or runnable (0 when unknown). Low
   * for a normal guest; high for one that busy-polls at rest, whose runnable threads then say
   * nothing about work.
   */
  readonly runnableShare: number
  /** Number of sampling intervals it was computed from. */
  readonly intervals: number
  /** Mean interval length, ms: a baseline is only meaningful at a similar sampling period. */
  readonly meanIntervalMs: number
}

export function baselineFromRates(
  rates: readonly number[],
  p: number,
  meanIntervalMs: number,
  runnableShare = 0,
): IdleBaseline {
  return {
    rateCores: percentile(rates, p),
    medianCores: percentile(rates, 0.5),
    percentile: p,
    runnableShare,
    intervals: rates.length,
    meanIntervalMs,
  }
}

/**
 * The idle band's upper edge: baseline × factor + floor. The factor absorbs an idle guest's
 * jitter; the absolute floor keeps a near-zero baseline (a sleeping process) from making every
 * stray wake-up look busy.
 */
export function idleCeilingCores(baseline: IdleBaseline, factor: number, floorCores: number): number {
  return baseline.rateCores * factor + floorCores
}

/** A thread seen runnable counts as work unless the VM is usually runnable even at rest. */
export function runnableMeansBusy(baseline: IdleBaseline): boolean {
  return baseline.runnableShare < 0.5
}
