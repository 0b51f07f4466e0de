/**
 * Every threshold of the sync policy. Defaults in {@link DEFAULT_POLICY}, with the reasoning
 * behind each in the package README.
 */
export interface PolicyConfig {
  /** Consecutive idle intervals needed to call the guest idle. Default 2 (40 ms at the default 20 ms sampling). */
  readonly idleSamples: number
  /** Idle band = baseline × idleFactor + idleFloorCores. Default 1.5. */
  readonly idleFactor: number
  /** Absolute slack of the idle band, in cores. Default 0.03 (3 % of a core). */
  readonly idleFloorCores: number
  /** Bytes of disk I/O per interval still counted as quiet. Default 0. */
  readonly ioQuietBytes: number
  /** No idle, output-pressure or output-settled sync sooner than this after the last one completed, ms. Default 50. */
  readonly minIntervalMs: number
  /** A sync is forced this long after the last one completed, idle or not, ms. Default 1000. */
  readonly maxIntervalMs: number
  /** Output pressure: held output at or above this many bytes. Default 1 MiB. */
  readonly maxHeldBytes: number
  /** Output pressure: oldest held frame at or above this age, ms. Default 100. */
  readonly maxHeldAgeMs: number
  /**
   * Output settled: output is held and the guest emitted no frame for this many consecutive
   * intervals. WHY: a request/response guest under a closed-loop load answers what it was given
   * and then goes quiet on the wire well before its CPU reads idle; every held reply waits for
   * this sync, so waiting longer only delays them. 0 turns it off. Default 0.
   */
  readonly outputSettledSamples: number
  /**
   * Idle syncs only follow activity since the last sync (a busy interval, disk I/O, output
   * frames or held output). WHY: a guest that stayed idle since the last sync has (almost) nothing to send;
   * the max interval still covers its slow drift. Default true.
   */
  readonly requireActivitySinceSync: boolean
  /** How many recent intervals `sync-due` carries as evidence. Default max(idleSamples, 5). */
  readonly evidenceSamples: number
}

export const DEFAULT_POLICY: PolicyConfig = {
  idleSamples: 2,
  idleFactor: 1.5,
  idleFloorCores: 0.03,
  ioQuietBytes: 0,
  minIntervalMs: 50,
  maxIntervalMs: 1000,
  maxHeldBytes: 1 << 20,
  maxHeldAgeMs: 100,
  outputSettledSamples: 0,
  requireActivitySinceSync: true,
  evidenceSamples: 5,
}

/** Fills defaults and rejects inconsistent settings early, with a message naming the field. */
export function resolvePolicyConfig(partial: Partial<PolicyConfig> = {}): PolicyConfig {
  const c: PolicyConfig = {
    ...DEFAULT_POLICY,
    evidenceSamples: Math.max(
      partial.idleSamples ?? DEFAULT_POLICY.idleSamples,
      DEFAULT_POLICY.evidenceSamples,
    ),
    ...partial,
  }
  const positive = ['idleSamples', 'idleFactor', 'maxIntervalMs', 'evidenceSamples'] as const
  for (const k of positive) if (!(c[k] > 0)) throw new RangeError(`policy.${k} must be > 0, got ${c[k]}`)
  const nonNegative = [
    'idleFloorCores',
    'ioQuietBytes',
    'minIntervalMs',
    'maxHeldBytes',
    'maxHeldAgeMs',
    'outputSettledSamples',
  ] as const
  for (const k of nonNegative) if (!(c[k] >= 0)) throw new RangeError(`policy.${k} must be >= 0, got ${c[k]}`)
  if (c.minIntervalMs > c.maxIntervalMs) {
    throw new RangeError(
      `policy.minIntervalMs (${c.minIntervalMs}) exceeds maxIntervalMs (${c.maxIntervalMs})`,
    )
  }
  return c
}
