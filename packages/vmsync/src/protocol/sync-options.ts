// What both protocol sides need, and their tunables.
import type { DirtyTracker, MemorySource, ReplicatedVm } from '../vm/replicated-vm.js'

/**
 * Hashes pages of a VM's memory, 16 bytes (128-bit) per page in `indices` order. The package's
 * PageHasher (hashing/) satisfies it; tests may pass anything with this shape.
 */
export interface PageHashing {
  hash(source: MemorySource, indices: Uint32Array): Promise<Uint8Array>
}

export interface SyncSideOptions {
  readonly vm: ReplicatedVm
  readonly tracker: DirtyTracker
  readonly hasher: PageHashing
  /** Max wait for the peer's next message (default 10 000 ms). */
  readonly peerTimeoutMs?: number
  /**
   * Before pausing, wait until the VM emitted no frame for this long (bounded by quietMaxMs), so
   * both sides stop after finishing the same requests. PLOVER does this on the backup.
   */
  readonly quietWindowMs?: number
  readonly quietMaxMs?: number
  /**
   * A VM-specific "finished processing" signal (e.g. SimulatedVm.drained()); replaces the
   * frame-silence heuristic, still bounded by quietMaxMs.
   */
  readonly quiesce?: () => Promise<void>
  /** Pages per link message (default 256 = 1 MiB at 4 KiB pages). */
  readonly batchPages?: number
}

export const DEFAULT_PEER_TIMEOUT_MS = 10_000
export const DEFAULT_BATCH_PAGES = 256

/** Bounded wait for the VM to go quiet before pausing; never rejects. */
export function quiesceVm(o: SyncSideOptions, defaultWindowMs: number, defaultMaxMs: number): Promise<void> {
  const maxMs = o.quietMaxMs ?? defaultMaxMs
  if (maxMs <= 0) return Promise.resolve()
  if (o.quiesce) {
    let timer: NodeJS.Timeout | undefined
    const cap = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, maxMs)
    })
    return Promise.race([o.quiesce().catch(() => {}), cap]).finally(() => clearTimeout(timer))
  }
  return waitQuiet(o.vm, o.quietWindowMs ?? defaultWindowMs, maxMs)
}

/** Resolves when `vm` has been silent for `windowMs`, or after `maxMs` at the latest. */
export function waitQuiet(vm: ReplicatedVm, windowMs: number, maxMs: number): Promise<void> {
  if (windowMs <= 0 || maxMs <= 0) return Promise.resolve()
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(quiet)
      clearTimeout(cap)
      vm.off('frame-out', onFrame)
      resolve()
    }
    let quiet = setTimeout(done, windowMs)
    const cap = setTimeout(done, maxMs)
    const onFrame = () => {
      clearTimeout(quiet)
      quiet = setTimeout(done, windowMs)
    }
    vm.on('frame-out', onFrame)
  })
}
