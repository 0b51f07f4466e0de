import type { OutputSource } from './output-probe.js'

/** The shape of vmsync's `OutputGuard.stats()` that the output probe needs (structural: no dependency). */
export interface GuardStatsLike {
  stats(): { readonly heldBytes: number; readonly oldestHeldAgeMs: number; readonly emittedFrames: number }
}

/** Adapts an output guard (anything with vmsync's `stats()` shape) to an {@link OutputSource}. */
export function outputSourceFromGuard(guard: GuardStatsLike): OutputSource {
  return {
    heldBytes: () => guard.stats().heldBytes,
    oldestHeldAgeMs: () => guard.stats().oldestHeldAgeMs,
    framesOut: () => guard.stats().emittedFrames,
  }
}
