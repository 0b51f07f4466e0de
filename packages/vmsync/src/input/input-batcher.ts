// Primary side of the input coordinator: inbound client frames are batched (by count, bytes or a
// short delay, whichever first) into one Input log proposal each, so consensus cost is paid per
// batch, not per packet. A frame is never delivered to any VM before its batch commits.
import { EventEmitter } from 'eventemitter3'
import { LogRecordKind, type OrderedLog } from '../log/ordered-log.js'
import { encodeFrameBatch } from './frame-batch.js'

export interface InputBatcherOptions {
  /** Flush when this many frames are pending (default 64). */
  readonly maxFrames?: number
  /** Flush when this many bytes are pending (default 256 KiB). */
  readonly maxBytes?: number
  /** Flush this long after the first pending frame (default 1 ms). */
  readonly maxDelayMs?: number
}

export interface InputBatcherEvents {
  /** A batch committed at log `index`. */
  committed: (index: number, frames: number) => void
  /**
   * A batch was not committed (not leader, leadership lost). Its frames are lost, as packets on a
   * network may be; clients retransmit (TCP state lives in the guest).
   */
  dropped: (frames: number, error: Error) => void
}

export class InputBatcher extends EventEmitter<InputBatcherEvents> {
  private pending: Uint8Array[] = []
  private pendingBytes = 0
  private timer: NodeJS.Timeout | undefined
  private readonly inFlight = new Set<Promise<void>>()
  private readonly maxFrames: number
  private readonly maxBytes: number
  private readonly maxDelayMs: number

  constructor(
    private readonly log: OrderedLog,
    opts: InputBatcherOptions = {},
  ) {
    super()
    this.maxFrames = opts.maxFrames ?? 64
    this.maxBytes = opts.maxBytes ?? 256 * 1024
    this.maxDelayMs = opts.maxDelayMs ?? 1
  }

  /** An inbound frame from the network, addressed to the replicated VM. */
  push(frame: Uint8Array): void {
    this.pending.push(Uint8Array.from(frame))
    this.pendingBytes += frame.length
    if (this.pending.length >= this.maxFrames || this.pendingBytes >= this.maxBytes) this.flush()
    else this.timer ??= setTimeout(() => this.flush(), this.maxDelayMs)
  }

  /** Proposes whatever is pending now. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    if (this.pending.length === 0) return
    const frames = this.pending
    this.pending = []
    this.pendingBytes = 0
    const p = this.log.propose(LogRecordKind.Input, encodeFrameBatch(frames)).then(
      (index) => {
        this.emit('committed', index, frames.length)
      },
      (err: Error) => {
        this.emit('dropped', frames.length, err)
      },
    )
    this.inFlight.add(p)
    p.finally(() => this.inFlight.delete(p))
  }

  /** Flushes and waits for every proposal made so far to settle. */
  async drain(): Promise<void> {
    this.flush()
    await Promise.all([...this.inFlight])
  }

  /** Drops pending frames (stepping down). */
  clear(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    if (this.pending.length > 0) this.emit('dropped', this.pending.length, new Error('input batcher cleared'))
    this.pending = []
    this.pendingBytes = 0
  }
}
