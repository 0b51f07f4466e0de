// Messages between PageHasher (main thread) and its hash workers.
// WHY shared buffers: indices go in and hashes come out through SharedArrayBuffers the pool reuses,
// so a sync with 60 k pages moves no arrays through structured clone.
import type { MemorySource } from '../vm/replicated-vm.js'

export const HASH_BYTES = 16

export interface HashJob {
  readonly id: number
  readonly source: MemorySource
  readonly pageSize: number
  /** Shared Uint32 page indices; unused when `all` is true. */
  readonly indices: SharedArrayBuffer
  /** Shared output: HASH_BYTES per position. */
  readonly out: SharedArrayBuffer
  /** Positions [from, to) of this worker's share (into `indices`, or page numbers when `all`). */
  readonly from: number
  readonly to: number
  readonly all: boolean
  /** Largest single read from a file source, in bytes. */
  readonly chunkBytes: number
}

export type HashReply =
  | { readonly id: number; readonly ok: true }
  | { readonly id: number; readonly ok: false; readonly error: string }

/** First message of every worker, once its modules (including the native addon) are loaded. */
export interface WorkerReady {
  readonly ready: true
}
