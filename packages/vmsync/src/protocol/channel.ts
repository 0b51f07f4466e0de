// One side's view of the sync link: decodes messages, rejects stale and duplicate ones with typed
// errors, buffers messages that arrive before their step (the peer may reach the marker first),
// and lets the protocol await "the next message of type T for epoch E" with a bound.
// Garbage (undecodable, or a type this side never receives) closes the link: nothing half-read
// is ever acted upon.
import { EventEmitter } from 'eventemitter3'
import { LinkClosedError } from '../link/errors.js'
import type { SyncLink } from '../link/link.js'
import { decodeSyncMessage, encodeSyncMessage } from './codec.js'
import {
  DuplicateMessageError,
  MalformedMessageError,
  ProtocolViolationError,
  StaleEpochError,
  SyncAbortedError,
  SyncTimeoutError,
} from './errors.js'
import {
  isPrecopyMessage,
  messageName,
  type PrecopyOfferMsg,
  type PrecopyPagesMsg,
  type SyncMessage,
  SyncMessageType,
} from './messages.js'

export interface SyncChannelEvents {
  /** A stale or duplicate message was dropped (the link stays up). */
  rejected: (error: StaleEpochError | DuplicateMessageError, message: SyncMessage) => void
  /** The link closed; `error` says why (MalformedMessageError / ProtocolViolationError for garbage). */
  close: (error?: Error) => void
  /**
   * A pre-copy message, handed over as it arrives: it belongs to no epoch, so it is never
   * buffered, deduplicated or taken (the link is ordered, and a reconnect is a new channel).
   */
  precopy: (message: PrecopyOfferMsg | PrecopyPagesMsg) => void
}

interface Waiter {
  readonly epoch: number
  readonly types: ReadonlySet<SyncMessageType>
  readonly resolve: (m: SyncMessage) => void
  readonly reject: (e: Error) => void
  readonly timer: NodeJS.Timeout
}

export interface SyncChannelOptions {
  /** Message types this side may receive; anything else is a protocol violation. */
  readonly accepts: readonly SyncMessageType[]
  /** Bound on messages buffered ahead of the protocol (default 4096). */
  readonly maxBuffered?: number
}

export class SyncChannel extends EventEmitter<SyncChannelEvents> {
  private floor = 0
  private readonly buffered: SyncMessage[] = []
  private readonly seen = new Set<string>()
  private readonly aborted = new Map<number, string>()
  private waiter: Waiter | undefined
  private closedWith: Error | undefined
  private closed = false
  /** Encoded payload bytes through this channel (per-sync metrics take differences). */
  bytesSent = 0
  bytesReceived = 0
  private readonly accepts: ReadonlySet<SyncMessageType>
  private readonly maxBuffered: number

  constructor(
    readonly link: SyncLink,
    opts: SyncChannelOptions,
  ) {
    super()
    this.accepts = new Set(opts.accepts)
    this.maxBuffered = opts.maxBuffered ?? 4096
    link.on('message', (payload) => this.onPayload(payload))
    link.on('close', (err) => this.onClose(err))
    if (!link.isOpen) this.onClose(new LinkClosedError('sync link already closed'))
  }

  get isOpen(): boolean {
    return !this.closed
  }

  /** Messages for epochs below `epoch` are stale from now on; buffered ones are dropped. */
  setFloor(epoch: number): void {
    if (epoch <= this.floor) return
    this.floor = epoch
    for (let i = this.buffered.length - 1; i >= 0; i--) {
      if (this.buffered[i].epoch < epoch) this.buffered.splice(i, 1)
    }
    for (const key of this.seen) if (Number(key.split(':')[0]) < epoch) this.seen.delete(key)
    for (const e of this.aborted.keys()) if (e < epoch) this.aborted.delete(e)
  }

  async send(m: SyncMessage): Promise<void> {
    if (this.closed) throw this.closedWith ?? new LinkClosedError('sync link is closed')
    const payload = encodeSyncMessage(m)
    this.bytesSent += payload.length
    await this.link.send(payload)
  }

  /** The next buffered-or-arriving message of one of `types` for `epoch`, within `timeoutMs`. */
  take(epoch: number, types: readonly SyncMessageType[], timeoutMs: number): Promise<SyncMessage> {
    if (this.waiter) return Promise.reject(new Error('SyncChannel.take: one waiter at a time'))
    const abortReason = this.aborted.get(epoch)
    if (abortReason !== undefined)
      return Promise.reject(new SyncAbortedError(epoch, `peer aborted: ${abortReason}`))
    const want = new Set(types)
    const i = this.buffered.findIndex((m) => m.epoch === epoch && want.has(m.type))
    if (i >= 0) return Promise.resolve(this.buffered.splice(i, 1)[0])
    if (this.closed) return Promise.reject(this.closedWith ?? new LinkClosedError('sync link is closed'))
    return new Promise<SyncMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined
        const names = types.map(messageName).join('/')
        reject(new SyncTimeoutError(`no ${names} for epoch ${epoch} within ${timeoutMs} ms`))
      }, timeoutMs)
      this.waiter = { epoch, types: want, resolve, reject, timer }
    })
  }

  /** Closes the underlying link (idempotent). */
  close(error?: Error): void {
    this.link.close(error)
  }

  private onPayload(payload: Uint8Array): void {
    if (this.closed) return
    this.bytesReceived += payload.length
    let m: SyncMessage
    try {
      m = decodeSyncMessage(payload)
    } catch (err) {
      this.link.close(err instanceof MalformedMessageError ? err : new MalformedMessageError(String(err), 0))
      return
    }
    if (!this.accepts.has(m.type)) {
      this.link.close(
        new ProtocolViolationError(`unexpected ${messageName(m.type)} on this side of the link`),
      )
      return
    }
    if (isPrecopyMessage(m)) {
      this.emit('precopy', m)
      return
    }
    if (m.epoch < this.floor) {
      this.emit('rejected', new StaleEpochError(messageName(m.type), m.epoch, this.floor), m)
      return
    }
    const key = m.type === SyncMessageType.Pages ? `${m.epoch}:${m.type}:${m.seq}` : `${m.epoch}:${m.type}`
    if (this.seen.has(key)) {
      this.emit('rejected', new DuplicateMessageError(messageName(m.type), m.epoch), m)
      return
    }
    this.seen.add(key)
    if (m.type === SyncMessageType.Abort) {
      this.aborted.set(m.epoch, m.reason)
      const w = this.waiter
      if (w && w.epoch === m.epoch) {
        this.settle(w)
        w.reject(new SyncAbortedError(m.epoch, `peer aborted: ${m.reason}`))
      }
      return
    }
    const w = this.waiter
    if (w && w.epoch === m.epoch && w.types.has(m.type)) {
      this.settle(w)
      w.resolve(m)
      return
    }
    if (this.buffered.length >= this.maxBuffered) {
      this.link.close(new ProtocolViolationError(`peer sent more than ${this.maxBuffered} messages ahead`))
      return
    }
    this.buffered.push(m)
  }

  private settle(w: Waiter): void {
    clearTimeout(w.timer)
    this.waiter = undefined
  }

  private onClose(err?: Error): void {
    if (this.closed) return
    this.closed = true
    this.closedWith = err ?? new LinkClosedError('sync link closed')
    // Buffered messages stay takeable: a transfer that fully arrived before the primary died can
    // still be applied (the backup then holds the complete new state).
    const w = this.waiter
    if (w) {
      this.settle(w)
      w.reject(this.closedWith)
    }
    this.emit('close', err)
  }
}
