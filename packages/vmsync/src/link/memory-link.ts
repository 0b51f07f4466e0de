// In-process SyncLink pair: the fast path for protocol tests. Delivery is asynchronous (next
// microtask batch) like a socket, so tests cannot accidentally depend on re-entrancy.
import { EventEmitter } from 'eventemitter3'
import { LinkClosedError } from './errors.js'
import type { SyncLink, SyncLinkEvents } from './link.js'

class MemoryLink extends EventEmitter<SyncLinkEvents> implements SyncLink {
  peer: MemoryLink | undefined
  private closed = false

  get isOpen(): boolean {
    return !this.closed
  }

  async send(payload: Uint8Array): Promise<void> {
    if (this.closed) throw new LinkClosedError('link is closed')
    // Copy: the sender may reuse its buffer, as with a socket.
    const copy = Uint8Array.from(payload)
    const peer = this.peer
    setImmediate(() => {
      if (peer && !peer.closed) peer.emit('message', copy)
    })
  }

  close(error?: Error): void {
    if (this.closed) return
    this.closed = true
    this.emit('close', error)
    const peer = this.peer
    if (peer) setImmediate(() => peer.close(new LinkClosedError('peer closed the link')))
  }
}

export function createMemoryLinkPair(): [SyncLink, SyncLink] {
  const a = new MemoryLink()
  const b = new MemoryLink()
  a.peer = b
  b.peer = a
  return [a, b]
}
