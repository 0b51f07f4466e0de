import type { ProcessGoneError } from './process-gone-error.js'

/** What a probe returns when it could not read a value. */
export type ProbeFailure =
  | { readonly state: 'gone'; readonly error: ProcessGoneError }
  /** A transient or permission failure (e.g. a QMP query rejected); the process may be alive. */
  | { readonly state: 'error'; readonly error: Error }

export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err))
}
