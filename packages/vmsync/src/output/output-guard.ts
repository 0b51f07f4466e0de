// Remus-style output commit. The primary's outbound frames are held per epoch and released, in
// order, only when that epoch's sync is committed (SyncDone in the log): a client never sees an
// output the backup could not reproduce. The backup's frames are discarded. With no live backup
// the primary is unprotected: it releases immediately and raises an alarm until re-protected.
// Held bytes are bounded (maxHeldBytes): past the bound new frames are dropped, as a full NIC
// queue would drop them, so a stalled sync cannot grow the process without limit; TCP in the
// guest retransmits what was dropped.
import { EventEmitter } from 'eventemitter3'

export type OutputRole = 'primary' | 'backup'

export interface OutputGuardEvents {
  /** A frame that may now reach clients. */
  release: (frame: Uint8Array) => void
  /** Alarm: outputs are leaving without a backup able to reproduce them. */
  unprotected: (reason: string) => void
  /** A backup completed a sync; outputs are held again. */
  protected: () => void
  /** Held bytes reached maxHeldBytes: frames are dropped until a release makes room (once per period). */
  overflow: (heldBytes: number) => void
}

export interface OutputGuardStats {
  readonly heldFrames: number
  readonly heldBytes: number
  /** Age of the oldest held frame in ms (0 when nothing is held). */
  readonly oldestHeldAgeMs: number
  readonly releasedFrames: number
  readonly releasedBytes: number
  readonly discardedFrames: number
  /** Frames the primary dropped because maxHeldBytes were already held. */
  readonly droppedFrames: number
  readonly droppedBytes: number
  /** Frames the primary emitted since it started (PLOVER's output count for the marker). */
  readonly emittedFrames: number
  readonly isProtected: boolean
}

interface Held {
  readonly frame: Uint8Array
  readonly at: number
  /** Sync epoch whose commit releases it; undefined = still open (next seal labels it). */
  epoch: number | undefined
}

export interface OutputGuardOptions {
  readonly role: OutputRole
  /** Start protected (a backup is known in sync). Default false: unprotected until a sync. */
  readonly protected?: boolean
  /** Most bytes held at once (default 64 MiB); frames beyond it are dropped and counted. */
  readonly maxHeldBytes?: number
  readonly now?: () => number
}

export const DEFAULT_MAX_HELD_BYTES = 64 * 1024 * 1024

export class OutputGuard extends EventEmitter<OutputGuardEvents> {
  private role: OutputRole
  private isProtectedFlag: boolean
  /** FIFO, epochs non-decreasing from head to tail, open frames at the tail. */
  private readonly held: Held[] = []
  private head = 0
  private heldBytes = 0
  private releasedFrames = 0
  private releasedBytes = 0
  private discardedFrames = 0
  private droppedFrames = 0
  private droppedBytes = 0
  private emittedFrames = 0
  private alarmRaised = false
  private overflowing = false
  private readonly maxHeldBytes: number
  private readonly now: () => number

  constructor(opts: OutputGuardOptions) {
    super()
    this.role = opts.role
    this.isProtectedFlag = opts.protected ?? false
    this.maxHeldBytes = opts.maxHeldBytes ?? DEFAULT_MAX_HELD_BYTES
    if (!(this.maxHeldBytes > 0))
      throw new RangeError(`maxHeldBytes must be positive, got ${opts.maxHeldBytes}`)
    this.now = opts.now ?? (() => performance.now())
  }

  get outputRole(): OutputRole {
    return this.role
  }

  get isProtected(): boolean {
    return this.isProtectedFlag
  }

  /** A frame the local VM emitted. */
  push(frame: Uint8Array): void {
    if (this.role === 'backup') {
      this.discardedFrames++
      return
    }
    this.emittedFrames++
    if (!this.isProtectedFlag) {
      this.out(frame)
      return
    }
    if (this.heldBytes + frame.length > this.maxHeldBytes) {
      this.droppedFrames++
      this.droppedBytes += frame.length
      if (!this.overflowing) {
        this.overflowing = true
        this.emit('overflow', this.heldBytes)
      }
      return
    }
    this.overflowing = false
    this.held.push({ frame, at: this.now(), epoch: undefined })
    this.heldBytes += frame.length
  }

  /** The VM paused for sync `epoch`: every open frame belongs to it. */
  seal(epoch: number): void {
    for (let i = this.held.length - 1; i >= this.head && this.held[i].epoch === undefined; i--) {
      this.held[i].epoch = epoch
    }
  }

  /** Sync `epoch` committed: release every frame sealed with an epoch <= it, in order. */
  release(epoch: number): void {
    while (this.head < this.held.length) {
      const h = this.held[this.head]
      if (h.epoch === undefined || h.epoch > epoch) break
      this.head++
      this.heldBytes -= h.frame.length
      this.out(h.frame)
    }
    this.compact()
  }

  /** No live backup: flush everything held (in order) and pass frames through from now on. */
  unprotect(reason: string): void {
    if (this.role !== 'primary') return
    this.isProtectedFlag = false
    while (this.head < this.held.length) {
      const h = this.held[this.head++]
      this.heldBytes -= h.frame.length
      this.out(h.frame)
    }
    this.compact()
    // One alarm per unprotected period (the gauge in metrics/ shows the level).
    if (!this.alarmRaised) {
      this.alarmRaised = true
      this.emit('unprotected', reason)
    }
  }

  /** A backup completed a (full) sync: hold frames from now on. */
  protect(): void {
    if (this.role !== 'primary' || this.isProtectedFlag) return
    this.isProtectedFlag = true
    this.alarmRaised = false
    this.emit('protected')
  }

  /**
   * Step down to backup: held frames are dropped, never released (a deposed primary's outputs may
   * not match what the new primary will produce). Step up: start unprotected.
   */
  setRole(role: OutputRole): void {
    if (role === this.role) return
    this.role = role
    this.discardedFrames += this.held.length - this.head
    this.held.length = 0
    this.head = 0
    this.heldBytes = 0
    this.isProtectedFlag = false
    this.alarmRaised = false
    if (role === 'primary') this.unprotect('became primary without a synced backup')
  }

  stats(): OutputGuardStats {
    const oldest = this.head < this.held.length ? this.now() - this.held[this.head].at : 0
    return {
      heldFrames: this.held.length - this.head,
      heldBytes: this.heldBytes,
      oldestHeldAgeMs: oldest,
      releasedFrames: this.releasedFrames,
      releasedBytes: this.releasedBytes,
      discardedFrames: this.discardedFrames,
      droppedFrames: this.droppedFrames,
      droppedBytes: this.droppedBytes,
      emittedFrames: this.emittedFrames,
      isProtected: this.isProtectedFlag,
    }
  }

  private out(frame: Uint8Array): void {
    this.releasedFrames++
    this.releasedBytes += frame.length
    this.emit('release', frame)
  }

  private compact(): void {
    if (this.head === this.held.length) {
      this.held.length = 0
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > this.held.length) {
      this.held.splice(0, this.head)
      this.head = 0
    }
  }
}
