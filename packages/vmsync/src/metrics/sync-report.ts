// What one sync measured. Emitted as a typed event by both protocol sides and fed to
// VmsyncMetrics (Prometheus).
import type { SyncMode } from '../protocol/messages.js'

export type SyncSide = 'primary' | 'backup'

export interface SyncReport {
  readonly side: SyncSide
  readonly epoch: number
  readonly mode: SyncMode
  /** This side's dirty pages since the last completed sync. */
  readonly dirtyPages: number
  /** The peer's dirty pages (primary: from the backup's Dirty message; backup: 0, unknown). */
  readonly peerDirtyPages: number
  /** Pages this sync covered (union, or every page for a full sync). */
  readonly unionPages: number
  /** Union pages whose hashes matched (0 in Remus/Full mode: nothing compared). */
  readonly identicalPages: number
  /** identicalPages / unionPages * 100 (0 when the union is empty). */
  readonly identicalPct: number
  /** Pages whose contents went over the link. */
  readonly divergentPages: number
  /** Sync-link payload bytes this side sent (pages, hashes, sets, device state, framing). */
  readonly bytesSent: number
  readonly bytesReceived: number
  /** Size of the VM's device state. */
  readonly deviceStateBytes: number
  /** Device-state bytes that went over the link (less when sent as a delta). */
  readonly deviceStateSentBytes: number
  /** VM paused -> resumed, ms. */
  readonly pauseMs: number
  /** Marker applied -> VM resumed, ms (includes the bounded quiet wait). */
  readonly totalMs: number
  /** Time in the page hasher, ms, and bytes hashed. */
  readonly hashMs: number
  readonly hashedBytes: number
  /** hashedBytes / hashMs, MB/s (0 when nothing was hashed). */
  readonly hashMBps: number
  /**
   * Milliseconds per protocol step, in order (names depend on the side, e.g. primary: quiesce,
   * waitDirty, collect, hashAndWaitHashes, sendPages, exportDeviceState, waitAck, resetTracker,
   * resume; backup: quiesce, collect, waitUnion, hash, waitTransfer, writePages,
   * importDeviceState, resetTracker, resume).
   */
  readonly stepsMs: Readonly<Record<string, number>>
  /** Pages pre-copied (sent while the primary's VM ran) before this full sync; 0 if none. */
  readonly precopiedPages?: number
}

export interface SyncFailure {
  readonly side: SyncSide
  readonly epoch: number
  readonly reason: string
  readonly error: Error
}

export function pct(part: number, whole: number): number {
  return whole === 0 ? 0 : (part / whole) * 100
}

export function mbps(bytes: number, ms: number): number {
  return ms <= 0 ? 0 : bytes / 1e6 / (ms / 1e3)
}
