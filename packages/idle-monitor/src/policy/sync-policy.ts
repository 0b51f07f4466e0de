import { type IdleBaseline, idleCeilingCores, runnableMeansBusy } from '../calibration/idle-baseline.js'
import { type IntervalSample, intervalBetween, type Observation } from './observation.js'
import { type PolicyConfig, resolvePolicyConfig } from './policy-config.js'
import type { SyncDue, SyncReason } from './sync-reason.js'

/** `due`: sync-due was emitted and no syncStarted/syncCompleted has arrived yet. */
export type PolicyPhase = 'waiting' | 'due' | 'syncing'

export type Classification = 'idle' | 'busy' | 'unknown'

export interface Decision {
  /** The interval this observation closed; undefined for the first observation after a (re)start. */
  readonly interval?: IntervalSample
  readonly classification: Classification
  readonly idleStreak: number
  readonly phase: PolicyPhase
  readonly syncDue?: SyncDue
}

/**
 * The sync policy as a pure, deterministic state machine: no timers, no I/O, time comes only
 * from the observations and notifications it is given. The monitor drives it from a timer;
 * tests drive it from scripts.
 *
 * Triggers, checked on every observation while `waiting`, in this order (the first that holds
 * names the reason):
 *  1. idle — idleSamples consecutive idle intervals, ≥ minIntervalMs since the last sync, and
 *     (by default) some activity since the last sync;
 *  2. output-pressure — held bytes or oldest held age at their bound, ≥ minIntervalMs since the last sync;
 *  3. output-settled (when outputSettledSamples > 0) — output held and none emitted for that many
 *     intervals, ≥ minIntervalMs since the last sync;
 *  4. max-interval — ≥ maxIntervalMs since the last sync.
 * After a trigger the policy stays `due` until syncStarted/syncCompleted; if neither comes
 * within maxIntervalMs it re-emits (reason max-interval) so a lost event cannot stall syncing.
 */
export class SyncPolicy {
  readonly config: PolicyConfig
  private baselineValue: IdleBaseline | undefined
  private ceiling: number | null = null
  private prev: Observation | undefined
  private lastSyncAtMs: number | undefined
  private dueAtMs = 0
  private phaseValue: PolicyPhase = 'waiting'
  private streak = 0
  /** Consecutive intervals that ended with output held and emitted none. */
  private settled = 0
  private activity = false
  private readonly history: IntervalSample[] = []

  constructor(config: Partial<PolicyConfig> = {}, baseline?: IdleBaseline) {
    this.config = resolvePolicyConfig(config)
    if (baseline) this.setBaseline(baseline)
  }

  get phase(): PolicyPhase {
    return this.phaseValue
  }

  get baseline(): IdleBaseline | undefined {
    return this.baselineValue
  }

  /** The idle band's upper edge in cores, or null before a baseline is known. */
  get ceilingCores(): number | null {
    return this.ceiling
  }

  /** Installs a (new) baseline; the idle streak restarts because old intervals used the old band. */
  setBaseline(baseline: IdleBaseline): void {
    this.baselineValue = baseline
    this.ceiling = idleCeilingCores(baseline, this.config.idleFactor, this.config.idleFloorCores)
    this.streak = 0
  }

  observe(o: Observation): Decision {
    this.lastSyncAtMs ??= o.atMs
    const prev = this.prev
    this.prev = o
    if (!prev || o.atMs <= prev.atMs) return this.decision(undefined, 'unknown')

    const runnableBusy = this.baselineValue ? runnableMeansBusy(this.baselineValue) : false
    const interval = intervalBetween(prev, o, this.ceiling, this.config.ioQuietBytes, runnableBusy)
    this.history.push(interval)
    if (this.history.length > this.config.evidenceSamples) this.history.shift()
    const classification: Classification =
      interval.idle === null ? 'unknown' : interval.idle ? 'idle' : 'busy'

    // While the VM is paused for a sync its CPU rate says nothing about the guest.
    if (this.phaseValue === 'syncing') return this.decision(interval, classification)

    this.streak = interval.idle ? this.streak + 1 : 0
    // Unknown frame counts (no probe, or a failed reading) never count as quiet.
    const held = (interval.heldBytes ?? 0) > 0
    this.settled = held && interval.framesOut === 0 ? this.settled + 1 : 0
    // Held output also proves activity: the guest answered something since the last sync.
    const produced = (interval.framesOut ?? 0) > 0 || (interval.heldBytes ?? 0) > 0
    if (interval.idle === false || produced || (interval.ioBytes ?? 0) > 0) this.activity = true

    const reason = this.phaseValue === 'waiting' ? this.trigger(o, interval) : this.redue(o)
    if (!reason) return this.decision(interval, classification)
    this.phaseValue = 'due'
    this.dueAtMs = o.atMs
    const syncDue: SyncDue = {
      reason,
      atMs: o.atMs,
      sinceLastSyncMs: o.atMs - this.lastSyncAtMs,
      ceilingCores: this.ceiling,
      samples: [...this.history],
    }
    return this.decision(interval, classification, syncDue)
  }

  /** The sync began (VM about to pause): stop judging idleness until it completes. */
  syncStarted(_atMs: number): void {
    this.phaseValue = 'syncing'
    this.streak = 0
    this.settled = 0
  }

  /** The sync finished: the interval clock restarts here and the next interval starts fresh. */
  syncCompleted(atMs: number): void {
    this.phaseValue = 'waiting'
    this.lastSyncAtMs = atMs
    this.streak = 0
    this.settled = 0
    this.activity = false
    // WHY drop the previous observation: the next interval would span the pause.
    this.prev = undefined
  }

  private trigger(o: Observation, interval: IntervalSample): SyncReason | undefined {
    const c = this.config
    const since = o.atMs - this.lastSyncAtMs!
    const pastMin = since >= c.minIntervalMs
    if (pastMin && this.streak >= c.idleSamples && (this.activity || !c.requireActivitySinceSync))
      return 'idle'
    const held = interval.heldBytes ?? 0
    const pressured =
      held > 0 && (held >= c.maxHeldBytes || (interval.oldestHeldAgeMs ?? 0) >= c.maxHeldAgeMs)
    if (pastMin && pressured) return 'output-pressure'
    if (pastMin && c.outputSettledSamples > 0 && this.settled >= c.outputSettledSamples)
      return 'output-settled'
    if (since >= c.maxIntervalMs) return 'max-interval'
    return undefined
  }

  private redue(o: Observation): SyncReason | undefined {
    return o.atMs - this.dueAtMs >= this.config.maxIntervalMs ? 'max-interval' : undefined
  }

  private decision(
    interval: IntervalSample | undefined,
    classification: Classification,
    syncDue?: SyncDue,
  ): Decision {
    return { interval, classification, idleStreak: this.streak, phase: this.phaseValue, syncDue }
  }
}
