import { randomBytes } from 'node:crypto'
import type { Socket } from 'node:net'
import { EventEmitter } from 'eventemitter3'
import { DecodeError } from '../codec/errors.js'
import type { NodeId } from '../core/types.js'
import {
  FrameCipher,
  handshakeProof,
  MAC_BYTES,
  MIN_KEY_BYTES,
  NONCE_BYTES,
  proofMatches,
  SEQ_BYTES,
  sessionKeys,
} from './auth.js'
import { FrameDecoder, FrameError, frameHeader } from './framing.js'
import {
  decodeChallenge,
  decodeHello,
  decodeProof,
  encodeChallenge,
  encodeHello,
  encodeProof,
  MAX_CONTEXT_BYTES,
  MAX_HANDSHAKE_FRAME,
} from './handshake.js'

// An authenticated, length-framed message channel over one TCP socket, keyed by a pre-shared key.
//
//   const ch = new SecureChannel(socket, { role: 'dialer', key, context: 'my-proto-v1',
//                                          localId: 1, remoteId: 2 })
//   ch.on('open', (peer) => ch.send(payload))      // or: await ch.opened
//   ch.on('frame', (payload) => …)                  // authentic, in order, exactly once
//   ch.on('close', (err) => err.reason)             // exactly once, always with a typed reason
//
// Handshake and frame encryption: see auth.ts. After the handshake every frame is
// `u32 BE length | u64 BE seq | AES-256-GCM(payload) | 16-byte tag`. Whatever a peer sends,
// nothing throws out of a socket callback: every failure closes the socket and emits 'close' with
// a SecureChannelError whose `reason` says what went wrong. What it does not give: forward
// secrecy (session keys derive from the pre-shared key and public nonces: whoever later learns
// the key can decrypt a recording). Anyone holding the key is trusted to claim any id the
// acceptor accepts.

/** Why a channel closed (or why `send` refused). */
export type SecureChannelFailure =
  /** The peer's handshake proof did not verify: wrong key, or a forged, replayed or reflected handshake. */
  | 'bad-key'
  /** Acceptor: the Hello came from an id `acceptRemote` refuses (or from our own id). */
  | 'unknown-peer'
  /** Hello addressed to another id, or a dialed id answered by a different one. */
  | 'wrong-peer'
  /** The Hello names another protocol context (same framing, different user). */
  | 'protocol-mismatch'
  /** A frame's MAC did not verify: forged or corrupted. */
  | 'bad-mac'
  /** An authentic frame whose sequence number was already used: replayed. */
  | 'replay'
  /** An authentic frame from later in the stream: frames were dropped or reordered. */
  | 'reordered'
  /** A length prefix above the limit (handshake limit before authentication), or `send` of a too-large payload. */
  | 'oversized'
  /** Bytes that are not this protocol: bad magic/version/kind, truncated or trailing fields, short frame. */
  | 'malformed'
  /** The handshake did not finish within `handshakeTimeoutMs`. */
  | 'timeout'
  /** The socket errored, or the peer closed it. */
  | 'socket'
  /** `close()` was called on this side. */
  | 'local'
  /** `send` on a channel that is not open (still in the handshake, or closed). */
  | 'not-open'

export class SecureChannelError extends Error {
  override readonly name = 'SecureChannelError'
  constructor(
    readonly reason: SecureChannelFailure,
    message: string,
  ) {
    super(message)
  }
}

interface SecureChannelCommon {
  /** Pre-shared key, at least MIN_KEY_BYTES (16) random bytes. */
  readonly key: Uint8Array
  /**
   * Protocol name, bound into the proofs and session keys (1–64 UTF-8 bytes). Two protocols that
   * share a key must use different contexts; a mismatch is refused as 'protocol-mismatch'.
   */
  readonly context: string
  readonly localId: NodeId
  /** Largest payload accepted or sent (default 16 MiB): bounds what a peer can make us buffer. */
  readonly maxFrameBytes?: number
  /** The handshake (including a pending TCP connect) must finish within this (default 5000 ms). */
  readonly handshakeTimeoutMs?: number
  /** `writable` turns false while more than this sits in the socket's user-space buffer (default 4 MiB). */
  readonly sendBacklogBytes?: number
}

export interface SecureChannelDialerOptions extends SecureChannelCommon {
  readonly role: 'dialer'
  /** The only id this side will talk to. */
  readonly remoteId: NodeId
}

export interface SecureChannelAcceptorOptions extends SecureChannelCommon {
  readonly role: 'acceptor'
  /** Which ids may connect; asked once, when their Hello arrives. */
  readonly acceptRemote: (id: NodeId) => boolean
}

export type SecureChannelOptions = SecureChannelDialerOptions | SecureChannelAcceptorOptions

export interface SecureChannelEvents {
  /** Handshake done; `peer` is authenticated. */
  open: (peer: NodeId) => void
  /** One authentic payload, in send order. It is not copied; it stays valid. */
  frame: (payload: Buffer) => void
  /** The socket drained after `send` returned false. */
  drain: () => void
  /** Emitted exactly once. */
  close: (error: SecureChannelError) => void
}

export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024
const DEFAULT_SEND_BACKLOG_BYTES = 4 * 1024 * 1024
/** Below this a batch is copied into one buffer; above, written with cork (no user-space copy). */
const COALESCE_BYTES = 256 * 1024

type State = 'await-hello' | 'await-challenge' | 'await-proof' | 'open' | 'closed'

export class SecureChannel extends EventEmitter<SecureChannelEvents> {
  readonly role: 'dialer' | 'acceptor'
  /** Resolves with the authenticated peer id; rejects with the SecureChannelError if it closes first. */
  readonly opened: Promise<NodeId>
  /** "address:port" of the other end, captured before the socket can be destroyed. */
  readonly remote: string
  /**
   * The peer's id: on a dialer the dialed id; on an acceptor the id its Hello claimed. Only
   * authenticated once the channel is open.
   */
  peer: NodeId | undefined
  private state: State
  private readonly key: Uint8Array
  private readonly context: string
  private readonly contextBytes: Buffer
  private readonly localId: NodeId
  private readonly maxFrameBytes: number
  private readonly sendBacklogBytes: number
  private readonly acceptRemote: ((id: NodeId) => boolean) | undefined
  private readonly decoder = new FrameDecoder(MAX_HANDSHAKE_FRAME)
  private readonly nonce = randomBytes(NONCE_BYTES)
  private peerNonce: Uint8Array | undefined
  private sendCipher: FrameCipher | undefined
  private recvCipher: FrameCipher | undefined
  private timer: NodeJS.Timeout | undefined
  private settle!: (err?: SecureChannelError) => void

  /** Takes over `socket` (connected, or still connecting on a dialer). Throws RangeError on bad options. */
  constructor(
    private readonly socket: Socket,
    opts: SecureChannelOptions,
  ) {
    super()
    if (opts.key.length < MIN_KEY_BYTES)
      throw new RangeError(`pre-shared key must be at least ${MIN_KEY_BYTES} bytes`)
    this.contextBytes = Buffer.from(opts.context, 'utf8')
    if (this.contextBytes.length === 0 || this.contextBytes.length > MAX_CONTEXT_BYTES)
      throw new RangeError(`context must be 1–${MAX_CONTEXT_BYTES} UTF-8 bytes`)
    const max = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
    if (!Number.isSafeInteger(max) || max < 0 || max + SEQ_BYTES + MAC_BYTES > 0xffffffff)
      throw new RangeError(`maxFrameBytes ${max} out of range`)
    this.role = opts.role
    this.key = opts.key
    this.context = opts.context
    this.localId = opts.localId
    this.maxFrameBytes = max
    this.sendBacklogBytes = opts.sendBacklogBytes ?? DEFAULT_SEND_BACKLOG_BYTES
    this.acceptRemote = opts.role === 'acceptor' ? opts.acceptRemote : undefined
    this.peer = opts.role === 'dialer' ? opts.remoteId : undefined
    this.state = opts.role === 'dialer' ? 'await-challenge' : 'await-hello'
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`
    this.opened = new Promise<NodeId>((resolve, reject) => {
      this.settle = (err) => (err ? reject(err) : resolve(this.peer!))
    })
    // Callers that only listen for 'close' must not get an unhandled rejection.
    this.opened.catch(() => {})
    this.timer = setTimeout(() => this.fail('timeout', 'handshake timeout'), opts.handshakeTimeoutMs ?? 5000)
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('drain', () => this.emit('drain'))
    socket.on('error', (e) => this.fail('socket', `socket error: ${e.message}`))
    socket.on('close', () => this.fail('socket', 'socket closed'))
    if (opts.role === 'dialer') {
      const to = opts.remoteId
      const hello = () =>
        this.writeRaw(encodeHello({ context: this.contextBytes, from: this.localId, to, nonce: this.nonce }))
      if (socket.connecting) socket.once('connect', hello)
      else hello()
    }
  }

  get isOpen(): boolean {
    return this.state === 'open'
  }

  get isClosed(): boolean {
    return this.state === 'closed'
  }

  /**
   * Backpressure: room to send more. Not `!writableNeedDrain`, which flips after any write above
   * the socket's 16 KiB high-water mark even when the kernel took it all; false only while a
   * real backlog (≥ sendBacklogBytes) sits in user space. 'drain' says when it shrinks.
   */
  get writable(): boolean {
    return this.state === 'open' && this.socket.writableLength < this.sendBacklogBytes
  }

  /** Bytes accepted by `send` but not yet handed to the kernel. */
  get bufferedBytes(): number {
    return this.socket.writableLength
  }

  /**
   * Encrypt, tag and frame each payload, in order. Returns the socket's `write` result (false: above the
   * high-water mark, 'drain' follows). `onFlushed` runs once the bytes are handed to the kernel,
   * or with an error if the socket dies first. Throws SecureChannelError 'not-open' if the channel
   * is not open, 'oversized' if a payload exceeds maxFrameBytes (nothing is sent then).
   */
  send(payloads: Uint8Array | readonly Uint8Array[], onFlushed?: (err?: Error | null) => void): boolean {
    if (this.state !== 'open' || !this.sendCipher)
      throw new SecureChannelError(
        'not-open',
        `secure channel is ${this.state === 'closed' ? 'closed' : 'not open yet'}`,
      )
    const list: readonly Uint8Array[] = payloads instanceof Uint8Array ? [payloads] : payloads
    for (const p of list) {
      if (p.length > this.maxFrameBytes)
        throw new SecureChannelError(
          'oversized',
          `payload of ${p.length} bytes exceeds maxFrameBytes ${this.maxFrameBytes}`,
        )
    }
    const parts: Uint8Array[] = []
    let bytes = 0
    for (const p of list) {
      const { seq, body, mac } = this.sendCipher.seal(p)
      parts.push(frameHeader(SEQ_BYTES + body.length + MAC_BYTES), seq, body, mac)
      bytes += 4 + SEQ_BYTES + body.length + MAC_BYTES
    }
    // Small batches: one contiguous buffer (a writev of many tiny iovecs costs more than the
    // copy). Large ones: cork + writes, so big ciphertexts are not copied again in user space.
    if (bytes < COALESCE_BYTES) return this.socket.write(Buffer.concat(parts, bytes), onFlushed)
    this.socket.cork()
    let ok = true
    for (let i = 0; i < parts.length; i++)
      ok = this.socket.write(parts[i], i === parts.length - 1 ? onFlushed : undefined)
    this.socket.uncork()
    return ok
  }

  /** Close the socket; emits 'close' with reason 'local' (idempotent). */
  close(message = 'closed locally'): void {
    this.fail('local', message)
  }

  private fail(reason: SecureChannelFailure, message: string): void {
    if (this.state === 'closed') return
    const wasOpen = this.state === 'open'
    this.state = 'closed'
    clearTimeout(this.timer)
    this.socket.destroy()
    const err = new SecureChannelError(reason, message)
    if (!wasOpen) this.settle(err)
    this.emit('close', err)
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
      const during = this.state === 'open' ? 'frame' : 'handshake'
      if (e instanceof FrameError)
        this.fail('oversized', during === 'frame' ? e.message : `handshake ${e.message}`)
      else if (e instanceof DecodeError) this.fail('malformed', `malformed ${during}: ${e.message}`)
      // A throwing 'frame'/'open' listener is the user's bug, not the peer's; still never escape.
      else this.fail('local', `internal: ${(e as Error).message}`)
    }
  }

  private onFrame(frame: Buffer): void {
    switch (this.state) {
      case 'await-hello': {
        const h = decodeHello(frame)
        if (!this.contextBytes.equals(h.context)) {
          const theirs = JSON.stringify(Buffer.from(h.context).toString('utf8'))
          this.fail('protocol-mismatch', `peer speaks ${theirs}, this side ${JSON.stringify(this.context)}`)
          return
        }
        if (h.to !== this.localId) {
          this.fail('wrong-peer', `hello addressed to node ${h.to}, I am ${this.localId}`)
          return
        }
        this.peer = h.from
        if (h.from === this.localId || !this.acceptRemote!(h.from)) {
          this.fail('unknown-peer', `node ${h.from} is not an accepted peer`)
          return
        }
        this.peerNonce = h.nonce
        const proof = handshakeProof(
          this.key,
          this.context,
          'acceptor',
          h.from,
          this.localId,
          h.nonce,
          this.nonce,
        )
        this.writeRaw(encodeChallenge({ from: this.localId, nonce: this.nonce, proof }))
        this.state = 'await-proof'
        return
      }
      case 'await-challenge': {
        const c = decodeChallenge(frame)
        const peer = this.peer!
        if (c.from !== peer) {
          this.fail('wrong-peer', `dialed node ${peer} but node ${c.from} answered`)
          return
        }
        const want = handshakeProof(
          this.key,
          this.context,
          'acceptor',
          this.localId,
          peer,
          this.nonce,
          c.nonce,
        )
        if (!proofMatches(want, c.proof)) {
          this.fail('bad-key', `node ${peer} failed authentication (wrong key?)`)
          return
        }
        const mine = handshakeProof(this.key, this.context, 'dialer', this.localId, peer, this.nonce, c.nonce)
        this.writeRaw(encodeProof(mine))
        const keys = sessionKeys(this.key, this.context, this.localId, peer, this.nonce, c.nonce)
        this.becomeOpen(keys.dialerToAcceptor, keys.acceptorToDialer)
        return
      }
      case 'await-proof': {
        const proof = decodeProof(frame)
        const peer = this.peer!
        const nonceD = this.peerNonce!
        const want = handshakeProof(this.key, this.context, 'dialer', peer, this.localId, nonceD, this.nonce)
        if (!proofMatches(want, proof)) {
          this.fail('bad-key', `node ${peer} failed authentication (wrong key?)`)
          return
        }
        const keys = sessionKeys(this.key, this.context, peer, this.localId, nonceD, this.nonce)
        this.becomeOpen(keys.acceptorToDialer, keys.dialerToAcceptor)
        return
      }
      case 'open': {
        if (frame.length < SEQ_BYTES + MAC_BYTES) {
          this.fail('malformed', 'malformed frame: shorter than its sequence number and MAC')
          return
        }
        const seq = frame.subarray(0, SEQ_BYTES)
        const body = frame.subarray(SEQ_BYTES, frame.length - MAC_BYTES)
        const expected = this.recvCipher!.nextSeq
        const opened = this.recvCipher!.open(seq, body, frame.subarray(frame.length - MAC_BYTES))
        switch (opened.check) {
          case 'ok':
            this.emit('frame', opened.payload!)
            return
          case 'bad-mac':
            this.fail('bad-mac', 'bad frame MAC (forged or corrupted)')
            return
          case 'replay':
            this.fail('replay', `replayed frame (sequence ${seq.readBigUInt64BE(0)}, expected ${expected})`)
            return
          case 'reordered':
            this.fail(
              'reordered',
              `out-of-order frame (sequence ${seq.readBigUInt64BE(0)}, expected ${expected})`,
            )
            return
        }
        return
      }
      case 'closed':
        return
    }
  }

  private becomeOpen(sendKey: Buffer, recvKey: Buffer): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.sendCipher = new FrameCipher(sendKey)
    this.recvCipher = new FrameCipher(recvKey)
    this.decoder.maxFrameBytes = SEQ_BYTES + this.maxFrameBytes + MAC_BYTES
    this.state = 'open'
    this.settle()
    this.emit('open', this.peer!)
  }
}
