// The point-to-point channel the sync protocol runs over. Page data never goes through the
// consensus log (too big); it goes over one of these. Implementations: the authenticated TCP
// link (tcp-link.ts) and an in-memory pair for fast tests (memory-link.ts).
import type { EventEmitter } from 'eventemitter3'

export interface SyncLinkEvents {
  /** One whole, authenticated payload, in send order. */
  message: (payload: Uint8Array) => void
  /** Emitted exactly once; `error` is set unless close() was called locally without one. */
  close: (error?: Error) => void
}

export interface SyncLink extends EventEmitter<SyncLinkEvents> {
  readonly isOpen: boolean
  /** Resolves once the payload is handed to the OS (backpressure); rejects if the link is closed. */
  send(payload: Uint8Array): Promise<void>
  /** Idempotent. Emits 'close' once, with `error` if given. */
  close(error?: Error): void
}
