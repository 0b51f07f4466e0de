import type { IntervalSample } from './observation.js'

/**
 * - `idle`: CPU within the idle band and disk quiet for `idleSamples` intervals.
 * - `max-interval`: `maxIntervalMs` passed since the last sync, idle or not.
 * - `output-pressure`: held output reached `maxHeldBytes` or `maxHeldAgeMs`.
 * - `output-settled`: output is held and none was emitted for `outputSettledSamples` intervals.
 */
export type SyncReason = 'idle' | 'max-interval' | 'output-pressure' | 'output-settled'

export interface SyncDue {
  readonly reason: SyncReason
  readonly atMs: number
  /** Time since the last sync completed (or since the policy started). */
  readonly sinceLastSyncMs: number
  /** The idle band's upper edge at the time, cores; null before calibration. */
  readonly ceilingCores: number | null
  /** The most recent intervals, oldest first: the samples that led to the decision. */
  readonly samples: readonly IntervalSample[]
}
