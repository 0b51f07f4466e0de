// Backup-side staging for atomic apply: every received page is copied here first and nothing
// touches the VM until the transfer is complete and verified (count, batch sequence, checksum).
// If the primary dies mid-transfer, the staged pages are simply dropped: the VM keeps its
// pre-sync state. The buffer is reused across syncs (fresh memory costs ~15 µs/page here).
// A backup that waits for a full sync has no state worth keeping: it verifies the same way but
// writes each batch through (begin with keep: false), so a full sync costs no second copy of RAM.
import { TransferChecksum } from './checksum.js'
import { ProtocolViolationError } from './errors.js'
import type { PagesMsg, TransferEndMsg } from './messages.js'

export interface StagedTransfer {
  readonly indices: Uint32Array
  readonly data: Uint8Array
  readonly deviceState: Uint8Array
}

export class PageStaging {
  private data = new Uint8Array(0)
  private indices = new Uint32Array(0)
  private count = 0
  private batches = 0
  private lastIndex = -1
  private checksum = new TransferChecksum()
  private allowed: Uint32Array | null = null
  private keep = true

  constructor(
    private readonly pageSize: number,
    private readonly pageCount: number,
  ) {}

  /**
   * Starts a transfer. `allowed` = the union (ascending), or null for a full sync (all pages).
   * `keep: false`: verify only (sequence, page set, checksum); the caller writes each batch.
   */
  begin(allowed: Uint32Array | null, opts: { readonly keep?: boolean } = {}): void {
    this.count = 0
    this.batches = 0
    this.lastIndex = -1
    this.checksum = new TransferChecksum()
    this.allowed = allowed
    this.keep = opts.keep ?? true
    if (!this.keep) return
    const max = allowed ? allowed.length : this.pageCount
    // Grow only; never shrink, so steady-state syncs do not allocate.
    if (this.indices.length < max) this.indices = new Uint32Array(max)
  }

  get stagedPages(): number {
    return this.count
  }

  add(m: PagesMsg): void {
    if (m.seq !== this.batches) {
      throw new ProtocolViolationError(`page batch ${m.seq} out of order (expected ${this.batches})`)
    }
    if (m.data.length !== m.indices.length * this.pageSize) {
      throw new ProtocolViolationError(
        `page batch carries ${m.data.length} bytes for ${m.indices.length} pages`,
      )
    }
    if (m.indices[0] <= this.lastIndex) {
      throw new ProtocolViolationError(`page ${m.indices[0]} sent twice or out of order`)
    }
    for (const p of m.indices) {
      if (p >= this.pageCount) throw new ProtocolViolationError(`page ${p} out of range`)
      if (this.allowed && !contains(this.allowed, p)) {
        throw new ProtocolViolationError(`page ${p} is not in this sync's page set`)
      }
    }
    if (this.keep) {
      const need = (this.count + m.indices.length) * this.pageSize
      if (need > this.data.length) this.grow(need)
      this.data.set(m.data, this.count * this.pageSize)
      this.indices.set(m.indices, this.count)
    }
    this.checksum.addPages(m.indices, m.data, this.pageSize)
    this.count += m.indices.length
    this.lastIndex = m.indices[m.indices.length - 1]
    this.batches++
  }

  /** Verifies completeness; returns views into the staging buffers (valid until the next begin). */
  /** `deviceState`: the whole state (end.deviceState, or the delta in it applied to its base). */
  finish(end: TransferEndMsg, deviceState: Uint8Array = end.deviceState): StagedTransfer {
    if (end.pageCount !== this.count || end.batchCount !== this.batches) {
      throw new ProtocolViolationError(
        `incomplete transfer: staged ${this.count} pages in ${this.batches} batches, primary sent ${end.pageCount} in ${end.batchCount}`,
      )
    }
    this.checksum.addDeviceState(deviceState)
    const sum = this.checksum.digest()
    if (!Buffer.from(sum).equals(Buffer.from(end.checksum))) {
      throw new ProtocolViolationError('transfer checksum mismatch: staged pages differ from what was sent')
    }
    if (!this.keep) return { indices: new Uint32Array(0), data: new Uint8Array(0), deviceState }
    return {
      indices: this.indices.subarray(0, this.count),
      data: this.data.subarray(0, this.count * this.pageSize),
      deviceState,
    }
  }

  private grow(need: number): void {
    let size = Math.max(this.data.length * 2, 64 * this.pageSize)
    while (size < need) size *= 2
    const next = new Uint8Array(size)
    next.set(this.data.subarray(0, this.count * this.pageSize))
    this.data = next
  }
}

function contains(sorted: Uint32Array, v: number): boolean {
  let lo = 0
  let hi = sorted.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const x = sorted[mid]
    if (x === v) return true
    if (x < v) lo = mid + 1
    else hi = mid - 1
  }
  return false
}
