// Replica side of the input coordinator: committed log records are applied in index order,
// one at a time. Input records go to the VM (each frame once); a SyncMarker is a barrier — later
// inputs wait until the sync it starts is over, so both VMs stop at exactly the same cut.
//
// Exactly once, also across restarts: `appliedThrough` is the highest index this replica's VM
// state reflects; records at or below it are skipped. It is derived from the last completed
// sync, not persisted per input: a restarted replica's VM is fresh and untrusted, so it starts in
// skip-inputs mode (nothing delivered) until a full sync at marker m makes its VM equal to the
// primary's after exactly the inputs <= m; from then on it delivers m+1, m+2, … A log adapter
// that replays from 1 after a restart, or redelivers after reconnect, is therefore harmless.
//
// A gap (the log compacted past records this replica never applied) moves the cursor past them.
// A VM that was delivering inputs has then missed some for good: 'missed' reports it, and the
// owner must treat the VM as untrusted (it needs a full sync) before the next record is applied.
import { EventEmitter } from 'eventemitter3'
import { type LogRecord, LogRecordKind, type OrderedLog } from '../log/ordered-log.js'
import { decodeSyncDone, decodeSyncMarker, type SyncDone, type SyncMarker } from '../protocol/marker.js'
import { decodeFrameBatch } from './frame-batch.js'

export interface DeliveryHooks {
  /** Called for each committed marker, in order; delivery resumes when it settles. */
  onMarker?(index: number, marker: SyncMarker): Promise<void>
  onSyncDone?(index: number, done: SyncDone): void
}

export interface InputDeliveryEvents {
  delivered: (index: number, frames: number) => void
  /** A record not delivered to the VM, and why (below cursor, awaiting full sync, undecodable). */
  skipped: (index: number, reason: string) => void
  /** The VM refused a frame; delivery stopped (the replica must be rebuilt). */
  fault: (error: Error) => void
  /**
   * Records `from`..`through` were compacted away before this VM applied them, while it was
   * delivering inputs: its state is no longer a correct execution of the log. Handle it
   * synchronously (make the VM untrusted, i.e. setSkipInputs(true)).
   */
  missed: (from: number, through: number) => void
}

/** A queued record, or a gap the log reported in order with its records. */
type Item = LogRecord | { readonly gapThrough: number }

export interface InputDeliveryOptions {
  /** Highest log index already reflected in the VM (default 0). */
  readonly appliedThrough?: number
  /** Skip Input records (VM state untrusted) until setSkipInputs(false). Default false. */
  readonly skipInputs?: boolean
  readonly hooks?: DeliveryHooks
}

export class InputDelivery extends EventEmitter<InputDeliveryEvents> {
  private cursor: number
  private skipInputs: boolean
  private readonly queue: Item[] = []
  private pumping = false
  private stopped = false
  private idleWaiters: (() => void)[] = []
  hooks: DeliveryHooks

  constructor(
    private readonly vm: { injectFrame(frame: Uint8Array): Promise<void> },
    opts: InputDeliveryOptions = {},
  ) {
    super()
    this.cursor = opts.appliedThrough ?? 0
    this.skipInputs = opts.skipInputs ?? false
    this.hooks = opts.hooks ?? {}
  }

  /** Highest log index processed (delivered or deliberately skipped). */
  get appliedThrough(): number {
    return this.cursor
  }

  get skippingInputs(): boolean {
    return this.skipInputs
  }

  setSkipInputs(skip: boolean): void {
    this.skipInputs = skip
  }

  /** Subscribes to the log's committed records; returns an unsubscribe function. */
  attach(log: OrderedLog): () => void {
    const onApply = (r: LogRecord) => this.push(r)
    const onGap = (through: number) => this.skipThrough(through)
    log.on('apply', onApply)
    log.on('gap', onGap)
    return () => {
      log.off('apply', onApply)
      log.off('gap', onGap)
    }
  }

  push(record: LogRecord): void {
    this.enqueue(record)
  }

  /** Records up to `through` will never arrive (compacted away); queued in order with push(). */
  skipThrough(through: number): void {
    this.enqueue({ gapThrough: through })
  }

  private enqueue(item: Item): void {
    if (this.stopped) return
    this.queue.push(item)
    if (!this.pumping) void this.pump()
  }

  /** Resolves once every record pushed so far is processed. */
  idle(): Promise<void> {
    if (!this.pumping && this.queue.length === 0) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  /** Stops delivering (replica shutting down or stepping out). */
  stop(): void {
    this.stopped = true
    this.queue.length = 0
  }

  private async pump(): Promise<void> {
    this.pumping = true
    try {
      while (this.queue.length > 0 && !this.stopped) {
        const r = this.queue.shift()!
        if ('gapThrough' in r) {
          this.skipGap(r.gapThrough)
          continue
        }
        if (r.index <= this.cursor) {
          this.emit('skipped', r.index, `at or below appliedThrough ${this.cursor}`)
          continue
        }
        await this.apply(r)
        this.cursor = r.index
      }
    } catch (err) {
      this.stopped = true
      this.queue.length = 0
      this.emit('fault', err as Error)
    } finally {
      this.pumping = false
      const waiters = this.idleWaiters
      this.idleWaiters = []
      for (const w of waiters) w()
    }
  }

  private skipGap(through: number): void {
    if (through <= this.cursor) return
    const from = this.cursor + 1
    this.cursor = through
    if (this.skipInputs)
      this.emit('skipped', through, `records ${from}..${through} compacted away; awaiting a full sync`)
    else this.emit('missed', from, through)
  }

  private async apply(r: LogRecord): Promise<void> {
    switch (r.kind) {
      case LogRecordKind.Input: {
        if (this.skipInputs) {
          this.emit('skipped', r.index, 'VM state untrusted: waiting for a full sync')
          return
        }
        let frames: Uint8Array[]
        try {
          frames = decodeFrameBatch(r.data)
        } catch (err) {
          this.emit('skipped', r.index, (err as Error).message)
          return
        }
        for (const f of frames) await this.vm.injectFrame(f)
        this.emit('delivered', r.index, frames.length)
        return
      }
      case LogRecordKind.SyncMarker: {
        let marker: SyncMarker
        try {
          marker = decodeSyncMarker(r.data)
        } catch (err) {
          this.emit('skipped', r.index, (err as Error).message)
          return
        }
        // Errors inside a sync are the protocol's to report; the barrier only waits.
        await this.hooks.onMarker?.(r.index, marker).catch(() => {})
        return
      }
      case LogRecordKind.SyncDone: {
        let done: SyncDone
        try {
          done = decodeSyncDone(r.data)
        } catch (err) {
          this.emit('skipped', r.index, (err as Error).message)
          return
        }
        this.hooks.onSyncDone?.(r.index, done)
        return
      }
      case LogRecordKind.Unprotect:
        return // only its commit matters, to the primary that proposed it
      default:
        this.emit('skipped', r.index, `unknown record kind ${r.kind}`)
    }
  }
}
