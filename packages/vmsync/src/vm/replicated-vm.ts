// The replicated-VM interface: everything the sync protocol needs from a hypervisor.
// SimulatedVm (simulated/) and @plover/qemu's QemuVm implement it; both must pass the
// compliance suite exported as '@plover/vmsync/compliance'.
import type { EventEmitter } from 'eventemitter3'

export const PAGE_SIZE = 4096

/**
 * Where a VM's RAM can be read from *another thread* (the hashing workers) without copying
 * through the main thread. QEMU's RAM is a file (memory-backend-file share=on); the simulated
 * VM keeps its RAM in a SharedArrayBuffer.
 */
export type MemorySource =
  | { readonly kind: 'file'; readonly path: string; readonly offset: number; readonly size: number }
  | { readonly kind: 'shared'; readonly buffer: SharedArrayBuffer }

export type VmRunState = 'running' | 'paused' | 'exited'

export interface VmExitInfo {
  readonly code: number | null
  readonly signal: string | null
  /** Human-readable reason, e.g. the tail of QEMU's serial log. */
  readonly reason: string
}

export interface ReplicatedVmEvents {
  /** A frame the guest sent. Only the primary's frames ever reach a client (via the output guard). */
  'frame-out': (frame: Uint8Array) => void
  /** The VM stopped without being asked to (crash, SIGKILL). */
  exit: (info: VmExitInfo) => void
}

export interface ReplicatedVm extends EventEmitter<ReplicatedVmEvents> {
  readonly pageSize: number
  readonly pageCount: number
  readonly runState: VmRunState
  readonly memorySource: MemorySource

  pause(): Promise<void>
  resume(): Promise<void>

  /**
   * Copies pages `indices[i]` into `dst` at i*pageSize. Also while running (pre-copy reads a
   * running primary; such a copy may race with the guest's writes, and the full sync that follows
   * compares every page again).
   */
  readPages(indices: Uint32Array, dst: Uint8Array): Promise<void>
  /** Overwrites pages; rejects unless the VM is paused. */
  writePages(indices: Uint32Array, src: Uint8Array): Promise<void>

  /** CPU registers, device counters: everything that is not RAM. Paused only. */
  exportDeviceState(): Promise<Uint8Array>
  importDeviceState(state: Uint8Array): Promise<void>

  /** Deliver an inbound frame to the guest (in log order; the coordinator guarantees once). */
  injectFrame(frame: Uint8Array): Promise<void>

  /** Stops the VM and releases its resources. Idempotent. */
  close(): Promise<void>
}

/**
 * Finds pages changed since the last `reset()`. Implementations: the simulated VM's write
 * barrier, QEMU's hash-scan (hash all pages, compare with the last vector) and soft-dirty.
 */
export interface DirtyTracker {
  /** Pages changed since the last reset, ascending. The VM must be paused. */
  collect(): Promise<Uint32Array>
  /** The current contents become the baseline for the next collect(). The VM must be paused. */
  reset(): Promise<void>
  /**
   * Optional: the digest of every page as guest RAM is now, and the hasher that made them;
   * undefined while the VM runs. A tracker that hashes all of RAM to find changed pages
   * (hash-scan) has them from its last scan, brings them up to date by re-hashing only the pages
   * the host wrote since, or scans again (block-first, cheaper than hashing page by page). A sync
   * takes them instead of hashing the pages it compares — only from the very hasher object it
   * would use itself.
   */
  currentDigests?(): Promise<TrackerDigests | undefined>
}

export interface TrackerDigests {
  /** The object that hashed them: same object, same digest function and width. */
  readonly hasher: object
  /** Page p's digest at p × (byteLength / pageCount). Valid until the tracker is used again. */
  readonly digests: Uint8Array
}
