import type { Socket } from 'node:net'
import { EventEmitter } from 'eventemitter3'
import { DecodeError } from '../codec/errors.js'
import type { DecodeLimits } from '../codec/limits.js'
import { decodeMessage } from '../codec/message.js'
import type { Message, NodeId } from '../core/types.js'
import { SecureChannel } from './secure-channel.js'

// One transport connection to one cluster member: a SecureChannel (handshake, framing, MACs)
// carrying Raft messages. On top of the channel it decodes each payload and refuses a message
// whose from/to does not match the authenticated link. Any violation destroys the socket and
// reports a reason; nothing here throws out of a socket callback.

/** Protocol context of the consensus transport's SecureChannels. */
export const TRANSPORT_CONTEXT = 'plover-transport-v2'

export interface ConnectionConfig {
  readonly selfId: NodeId
  readonly key: Uint8Array
  readonly isMember: (id: NodeId) => boolean
  /** Largest encoded message. */
  readonly maxFrameBytes: number
  readonly handshakeTimeoutMs: number
  readonly limits: DecodeLimits
}

export interface ConnectionEvents {
  open: (peer: NodeId) => void
  message: (m: Message) => void
  /** Socket drained after a write returned false. */
  drain: () => void
  /** Emitted exactly once. */
  close: (reason: string) => void
}

export class Connection extends EventEmitter<ConnectionEvents> {
  private readonly channel: SecureChannel

  private constructor(socket: Socket, cfg: ConnectionConfig, dialTo: NodeId | undefined) {
    super()
    const common = {
      key: cfg.key,
      context: TRANSPORT_CONTEXT,
      localId: cfg.selfId,
      maxFrameBytes: cfg.maxFrameBytes,
      handshakeTimeoutMs: cfg.handshakeTimeoutMs,
    }
    this.channel =
      dialTo === undefined
        ? new SecureChannel(socket, { ...common, role: 'acceptor', acceptRemote: cfg.isMember })
        : new SecureChannel(socket, { ...common, role: 'dialer', remoteId: dialTo })
    const ch = this.channel
    ch.on('open', (peer) => this.emit('open', peer))
    ch.on('drain', () => this.emit('drain'))
    ch.on('close', (err) => {
      this.emit('close', err.message)
      this.removeAllListeners()
    })
    ch.on('frame', (payload) => {
      let m: Message
      try {
        m = decodeMessage(payload, cfg.limits)
      } catch (e) {
        const why = e instanceof DecodeError ? e.message : `internal: ${(e as Error).message}`
        this.destroy(`malformed frame: ${why}`)
        return
      }
      if (m.from !== ch.peer || m.to !== cfg.selfId) {
        this.destroy(`message ${m.from}->${m.to} on the authenticated link ${ch.peer}->${cfg.selfId}`)
        return
      }
      this.emit('message', m)
    })
  }

  /** Client side: `socket` is connecting/connected to `peer`. */
  static dial(socket: Socket, cfg: ConnectionConfig, peer: NodeId): Connection {
    return new Connection(socket, cfg, peer)
  }

  static accept(socket: Socket, cfg: ConnectionConfig): Connection {
    return new Connection(socket, cfg, undefined)
  }

  /** The authenticated (or, while dialing, expected; while accepting, claimed) peer id. */
  get peer(): NodeId | undefined {
    return this.channel.peer
  }

  /** "address:port" of the other end. */
  get remote(): string {
    return this.channel.remote
  }

  get isOpen(): boolean {
    return this.channel.isOpen
  }

  /** Frame + MAC each payload. Returns false when not open or the socket's buffer is full (wait for drain). */
  send(payloads: readonly Uint8Array[]): boolean {
    if (!this.channel.isOpen) return false
    return this.channel.send(payloads)
  }

  /** Room to write more (see SecureChannel.writable). */
  get writable(): boolean {
    return this.channel.writable
  }

  destroy(reason: string): void {
    this.channel.close(reason)
  }
}
