// Messages between PageHasher (main thread) and its hash workers.
// WHY shared buffers: indices go in and hashes come out through SharedArrayBuffers the pool reuses,
// so a sync with 60 k pages moves no arrays through structured clone.
import type { MemorySource } from '../vm/replicated-vm.js'
import type { FileReads } from './mapped-memory.js'

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
  /** How a file source is read (mapped-memory.ts). */
  readonly fileReads: FileReads
  /**
   * Block-first scan of every page (`all` must be true; from/to count blocks): set for
   * PageHasher.scan. Absent for plain page hashing.
   */
  readonly scan?: ScanJob
}

export interface ScanJob {
  /** Pages per block. */
  readonly blockPages: number
  /** Shared output: HASH_BYTES per block. */
  readonly blocksOut: SharedArrayBuffer
  /** The previous scan's block and page digests; null hashes every page. */
  readonly previous: { readonly blocks: SharedArrayBuffer; readonly pages: SharedArrayBuffer } | null
  /** Shared Int32 counter: blocks this job hashed page by page (their digest changed). */
  readonly changedBlocks: SharedArrayBuffer
}

export type HashReply =
  /** `fileRead`: how a file source was read. */
  | { readonly id: number; readonly ok: true; readonly fileRead?: 'mmap' | 'pread' }
  | { readonly id: number; readonly ok: false; readonly error: string }

/** First message of every worker, once its modules (including the native addon) are loaded. */
export interface WorkerReady {
  readonly ready: true
  /** Whether this worker can map file sources (and why not). */
  readonly mappedFiles: { readonly available: boolean; readonly reason?: string }
}
