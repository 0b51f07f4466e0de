import { intervalBetween, type Observation } from '../policy/observation.js'
import { baselineFromRates, type IdleBaseline } from './idle-baseline.js'

export interface CalibrationConfig {
  /** How long to observe the VM at rest, in ms. Default 2000. */
  readonly windowMs: number
  /** Which percentile of the per-interval rates is the baseline. Default 0.9. */
  readonly percentile: number
  /** Fewest intervals accepted; fewer means the window was too short for the period. Default 10. */
  readonly minIntervals: number
}

export const DEFAULT_CALIBRATION: CalibrationConfig = { windowMs: 2000, percentile: 0.9, minIntervals: 10 }

/**
 * Pure accumulator: feed it the observations of a VM at rest, it returns the baseline once the
 * window is covered. The caller guarantees the VM has no work during the window.
 *
 * WHY a high percentile and not the mean: the policy tests each interval against the band, so
 * the band must contain almost all at-rest intervals (periodic timer bursts included), or an
 * idle guest would keep breaking its own idle streak.
 */
export class Calibrator {
  readonly config: CalibrationConfig
  private first: Observation | undefined
  private prev: Observation | undefined
  private readonly rates: number[] = []
  private runnableSeen = 0

  constructor(config: Partial<CalibrationConfig> = {}) {
    this.config = { ...DEFAULT_CALIBRATION, ...config }
  }

  /** Returns the baseline when this observation completes the window, else undefined. */
  add(o: Observation): IdleBaseline | undefined {
    if (this.prev && o.atMs > this.prev.atMs) {
      // The same measure the policy compares with the band: the CPU rate per interval.
      this.rates.push(intervalBetween(this.prev, o, null, 0).cpuRateCores)
      if ((o.runnable ?? 0) > 0) this.runnableSeen++
    }
    this.first ??= o
    this.prev = o
    if (o.atMs - this.first.atMs < this.config.windowMs || this.rates.length < this.config.minIntervals)
      return undefined
    return this.result()
  }

  /** Forget the last observation (the VM was paused for a sync): the next one only re-seeds. */
  reseed(): void {
    this.prev = undefined
  }

  /** The baseline from what has been seen so far; throws if fewer than `minIntervals`. */
  result(): IdleBaseline {
    if (this.rates.length < this.config.minIntervals) {
      throw new Error(`calibration saw ${this.rates.length} intervals, needs ${this.config.minIntervals}`)
    }
    const spanMs = this.prev!.atMs - this.first!.atMs
    const runnableShare = this.runnableSeen / this.rates.length
    return baselineFromRates(this.rates, this.config.percentile, spanMs / this.rates.length, runnableShare)
  }
}
