import { asError, type ProbeFailure } from './probe-sample.js'

/**
 * What the output probe reads. vmsync's output guard satisfies it: it holds the primary's
 * frames of the current epoch until the next sync commits.
 */
export interface OutputSource {
  /** Bytes of output held, waiting for the next sync. */
  heldBytes(): number
  /** Age of the oldest held frame in ms; 0 when nothing is held. */
  oldestHeldAgeMs(): number
  /** Cumulative count of frames the guest has emitted (activity signal). */
  framesOut(): number
}

export interface OutputCounters {
  readonly heldBytes: number
  readonly oldestHeldAgeMs: number
  readonly framesOut: number
}

export type OutputSample = ({ readonly state: 'ok' } & OutputCounters) | ProbeFailure

export interface OutputProbe {
  sample(): OutputSample
}

/** Reads an {@link OutputSource}; a throwing source becomes `{ state: 'error' }`, never an exception. */
export class OutputSourceProbe implements OutputProbe {
  constructor(private readonly source: OutputSource) {}

  sample(): OutputSample {
    try {
      return {
        state: 'ok',
        heldBytes: this.source.heldBytes(),
        oldestHeldAgeMs: this.source.oldestHeldAgeMs(),
        framesOut: this.source.framesOut(),
      }
    } catch (err) {
      return { state: 'error', error: asError(err) }
    }
  }
}
