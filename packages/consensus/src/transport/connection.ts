import { randomBytes } from 'node:crypto'
import type { Socket } from 'node:net'
import { EventEmitter } from 'eventemitter3'
import { DecodeError } from '../codec/errors.js'
import type { DecodeLimits } from '../codec/limits.js'
import { decodeMessage } from '../codec/message.js'
import type { Message, NodeId } from '../core/types.js'
import { FrameMac, handshakeProof, MAC_BYTES, NONCE_BYTES, proofMatches, sessionKeys } from './auth.js'
import { FrameDecoder, FrameError, frameHeader } from './framing.js'
import {
  decodeChallenge,
  decodeHello,
  decodeProof,
  encodeChallenge,
  encodeHello,
  encodeProof,
  MAX_HANDSHAKE_FRAME,
} from './handshake.js'

// One TCP connection to one peer: handshake state machine, then MAC-checked message frames.
// Any protocol violation destroys the socket and reports a reason; nothing here throws out of
// a socket callback, so a hostile peer cannot crash the process.

export interface ConnectionConfig {
  readonly selfId: NodeId
  readonly key: Uint8Array
  readonly isMember: (id: NodeId) => boolean
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

const SEND_BACKLOG_BYTES = 4 * 1024 * 1024

type State = 'await-hello' | 'await-challenge' | 'await-proof' | 'open' | 'closed'

export class Connection extends EventEmitter<ConnectionEvents> {
  private state: State
  private readonly decoder = new FrameDecoder(MAX_HANDSHAKE_FRAME)
  private readonly nonce = randomBytes(NONCE_BYTES)
  private peerNonce: Uint8Array | undefined
  private sendMac: FrameMac | undefined
  private recvMac: FrameMac | undefined
  private timer: NodeJS.Timeout | undefined
  /** The authenticated (or, while dialing, expected) peer id. */
  peer: NodeId | undefined
  /** "address:port" of the other end, captured before the socket can be destroyed. */
  readonly remote: string

  private constructor(
    private readonly socket: Socket,
    private readonly cfg: ConnectionConfig,
    dialTo: NodeId | undefined,
  ) {
    super()
    this.peer = dialTo
    this.state = dialTo === undefined ? 'await-hello' : 'await-challenge'
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`
    socket.setNoDelay(true)
    this.timer = setTimeout(() => this.destroy('handshake timeout'), cfg.handshakeTimeoutMs)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('drain', () => this.emit('drain'))
    socket.on('error', (e) => this.destroy(`socket error: ${e.message}`))
    socket.on('close', () => this.destroy('socket closed'))
  }

  /** Client side: `socket` is connecting/connected to `peer`. */
  static dial(socket: Socket, cfg: ConnectionConfig, peer: NodeId): Connection {
    const c = new Connection(socket, cfg, peer)
    const hello = () => c.writeRaw(encodeHello({ from: cfg.selfId, to: peer, nonce: c.nonce }))
    if (socket.connecting) socket.once('connect', hello)
    else hello()
    return c
  }

  static accept(socket: Socket, cfg: ConnectionConfig): Connection {
    return new Connection(socket, cfg, undefined)
  }

  get isOpen(): boolean {
    return this.state === 'open'
  }

  /** Frame + MAC each payload. Returns false when the socket's buffer is full (wait for drain). */
  send(payloads: readonly Uint8Array[]): boolean {
    if (this.state !== 'open' || !this.sendMac) return false
    const parts: Uint8Array[] = []
    let bytes = 0
    for (const p of payloads) {
      parts.push(frameHeader(p.length + MAC_BYTES), p, this.sendMac.next(p))
      bytes += p.length + 4 + MAC_BYTES
    }
    // Small batches: one contiguous buffer (a writev of many tiny iovecs costs more than the
    // copy). Large ones: cork + writes, so big entries are not copied again in user space.
    if (bytes < 256 * 1024) return this.socket.write(Buffer.concat(parts, bytes))
    this.socket.cork()
    let ok = true
    for (const part of parts) ok = this.socket.write(part)
    this.socket.uncork()
    return ok
  }

  /**
   * Room to write more. Not `!writableNeedDrain`: that flips after any write above the 16 KiB
   * high-water mark, even when the kernel took it all, and would hold the next batch back a
   * turn. Hold back only while a real backlog (≥ 4 MiB) sits in user space; 'drain' resumes.
   */
  get writable(): boolean {
    return this.state === 'open' && this.socket.writableLength < SEND_BACKLOG_BYTES
  }

  destroy(reason: string): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    clearTimeout(this.timer)
    this.socket.destroy()
    this.emit('close', reason)
    this.removeAllListeners()
  }

  private writeRaw(payload: Uint8Array): void {
    this.socket.write(Buffer.concat([frameHeader(payload.length), payload]))
  }

  private onData(chunk: Buffer): void {
    try {
      this.decoder.push(chunk)
      for (;;) {
        if (this.state === 'closed') return
        const frame = this.decoder.next()
        if (!frame) return
        this.onFrame(frame)
      }
    } catch (e) {
      const why =
        e instanceof DecodeError || e instanceof FrameError ? e.message : `internal: ${(e as Error).message}`
      this.destroy(`malformed ${this.state === 'open' ? 'frame' : 'handshake'}: ${why}`)
    }
  }

  private onFrame(frame: Buffer): void {
    switch (this.state) {
      case 'await-hello': {
        const h = decodeHello(frame)
        if (h.to !== this.cfg.selfId) {
          this.destroy(`hello addressed to node ${h.to}, I am ${this.cfg.selfId}`)
          return
        }
        if (h.from === this.cfg.selfId || !this.cfg.isMember(h.from)) {
          this.destroy(`node ${h.from} is not a configured member`)
          return
        }
        this.peer = h.from
        this.peerNonce = h.nonce
        const proof = handshakeProof(this.cfg.key, 'acceptor', h.from, this.cfg.selfId, h.nonce, this.nonce)
        this.writeRaw(encodeChallenge({ from: this.cfg.selfId, nonce: this.nonce, proof }))
        this.state = 'await-proof'
        return
      }
      case 'await-challenge': {
        const c = decodeChallenge(frame)
        const peer = this.peer!
        if (c.from !== peer) {
          this.destroy(`dialed node ${peer} but node ${c.from} answered`)
          return
        }
        const want = handshakeProof(this.cfg.key, 'acceptor', this.cfg.selfId, peer, this.nonce, c.nonce)
        if (!proofMatches(want, c.proof)) {
          this.destroy('peer failed authentication (wrong cluster key?)')
          return
        }
        this.writeRaw(
          encodeProof(handshakeProof(this.cfg.key, 'dialer', this.cfg.selfId, peer, this.nonce, c.nonce)),
        )
        const keys = sessionKeys(this.cfg.key, this.cfg.selfId, peer, this.nonce, c.nonce)
        this.sendMac = new FrameMac(keys.dialerToAcceptor)
        this.recvMac = new FrameMac(keys.acceptorToDialer)
        this.opened()
        return
      }
      case 'await-proof': {
        const proof = decodeProof(frame)
        const peer = this.peer!
        const want = handshakeProof(
          this.cfg.key,
          'dialer',
          peer,
          this.cfg.selfId,
          this.peerNonce!,
          this.nonce,
        )
        if (!proofMatches(want, proof)) {
          this.destroy(`node ${peer} failed authentication (wrong cluster key?)`)
          return
        }
        const keys = sessionKeys(this.cfg.key, peer, this.cfg.selfId, this.peerNonce!, this.nonce)
        this.sendMac = new FrameMac(keys.acceptorToDialer)
        this.recvMac = new FrameMac(keys.dialerToAcceptor)
        this.opened()
        return
      }
      case 'open': {
        if (frame.length < MAC_BYTES) {
          this.destroy('frame shorter than its MAC')
          return
        }
        const payload = frame.subarray(0, frame.length - MAC_BYTES)
        if (!this.recvMac!.verify(payload, frame.subarray(frame.length - MAC_BYTES))) {
          this.destroy('bad frame MAC (forged, corrupted or replayed)')
          return
        }
        const m = decodeMessage(payload, this.cfg.limits)
        if (m.from !== this.peer || m.to !== this.cfg.selfId) {
          this.destroy(
            `message ${m.from}->${m.to} on the authenticated link ${this.peer}->${this.cfg.selfId}`,
          )
          return
        }
        this.emit('message', m)
        return
      }
      case 'closed':
        return
    }
  }

  private opened(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.decoder.maxFrameBytes = this.cfg.maxFrameBytes
    this.state = 'open'
    this.emit('open', this.peer!)
  }
}
