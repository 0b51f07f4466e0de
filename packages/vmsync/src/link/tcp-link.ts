// Authenticated SyncLink over TCP. @plover/consensus's transport did not expose a reusable
// authenticated framed connection when this was written, so this is a small self-contained one:
// PSK challenge-response (handshake.ts), then frames `u32 BE length | payload | HMAC-SHA256`
// with per-direction keys and an implicit sequence number. Any garbage -> typed error, socket
// destroyed, nothing delivered.

import { timingSafeEqual } from 'node:crypto'
import net from 'node:net'
import { EventEmitter } from 'eventemitter3'
import { ByteQueue } from './byte-queue.js'
import { LinkAuthError, LinkClosedError, LinkError, LinkFrameError } from './errors.js'
import {
  decodeHello,
  deriveKeys,
  encodeHello,
  frameMac,
  HELLO_BYTES,
  type Hello,
  LinkRole,
  MAC_BYTES,
  newHello,
  proofFor,
  type SessionKeys,
  verifyProof,
} from './handshake.js'
import type { SyncLink, SyncLinkEvents } from './link.js'

export interface TcpLinkOptions {
  /** Pre-shared key, at least 16 bytes. */
  readonly psk: Uint8Array
  /** Largest payload accepted or sent (default 16 MiB): bounds what a peer can make us buffer. */
  readonly maxFrameBytes?: number
  /** Handshake must finish within this (default 5000 ms). */
  readonly handshakeTimeoutMs?: number
}

const DEFAULT_MAX_FRAME = 16 * 1024 * 1024
const MIN_PSK_BYTES = 16

function checkPsk(psk: Uint8Array): void {
  if (psk.length < MIN_PSK_BYTES)
    throw new LinkAuthError(`pre-shared key must be at least ${MIN_PSK_BYTES} bytes`)
}

type Phase = 'hello' | 'proof' | 'open' | 'closed'

export class TcpSyncLink extends EventEmitter<SyncLinkEvents> implements SyncLink {
  /** Resolves when authenticated; rejects (and closes) on any handshake failure. */
  readonly ready: Promise<void>
  private phase: Phase = 'hello'
  private readonly queue = new ByteQueue()
  private readonly self: Hello
  private peer: Hello | undefined
  private keys: SessionKeys | undefined
  private sendSeq = 0n
  private recvSeq = 0n
  private readonly maxFrame: number
  private settleReady!: (err?: Error) => void
  private readonly timer: NodeJS.Timeout

  constructor(
    private readonly socket: net.Socket,
    role: LinkRole,
    private readonly opts: TcpLinkOptions,
  ) {
    super()
    checkPsk(opts.psk)
    this.maxFrame = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME
    this.self = newHello(role)
    this.ready = new Promise<void>((resolve, reject) => {
      this.settleReady = (err) => (err ? reject(err) : resolve())
    })
    // Unhandled-rejection guard: callers that only listen for 'close' must not crash the process.
    this.ready.catch(() => {})
    this.timer = setTimeout(
      () => this.close(new LinkAuthError('sync link handshake timed out')),
      opts.handshakeTimeoutMs ?? 5000,
    )
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('error', (err) => this.close(new LinkClosedError(`sync link socket error: ${err.message}`)))
    socket.on('close', () => this.close(new LinkClosedError('peer closed the sync link')))
    socket.write(encodeHello(this.self))
  }

  get isOpen(): boolean {
    return this.phase === 'open'
  }

  async send(payload: Uint8Array): Promise<void> {
    if (this.phase !== 'open' || !this.keys) throw new LinkClosedError('sync link is not open')
    if (payload.length > this.maxFrame) {
      throw new LinkFrameError(`payload of ${payload.length} bytes exceeds maxFrameBytes ${this.maxFrame}`)
    }
    const header = Buffer.allocUnsafe(4)
    header.writeUInt32BE(payload.length + MAC_BYTES)
    const tag = frameMac(this.keys.sendKey, this.sendSeq++, payload)
    this.socket.cork()
    this.socket.write(header)
    this.socket.write(payload)
    const flushed = new Promise<void>((resolve, reject) => {
      this.socket.write(tag, (err) => (err ? reject(new LinkClosedError(err.message)) : resolve()))
    })
    this.socket.uncork()
    await flushed
  }

  close(error?: Error): void {
    if (this.phase === 'closed') return
    const wasOpen = this.phase === 'open'
    this.phase = 'closed'
    clearTimeout(this.timer)
    this.socket.destroy()
    if (!wasOpen) this.settleReady(error ?? new LinkClosedError('sync link closed during handshake'))
    this.emit('close', error)
  }

  private onData(chunk: Buffer): void {
    if (this.phase === 'closed') return
    this.queue.push(chunk)
    try {
      this.drain()
    } catch (err) {
      this.close(err instanceof LinkError ? err : new LinkFrameError(String(err)))
    }
  }

  private drain(): void {
    for (;;) {
      if (this.phase === 'hello') {
        if (this.queue.length < HELLO_BYTES) return
        this.peer = decodeHello(this.queue.take(HELLO_BYTES))
        this.socket.write(proofFor(this.opts.psk, this.self, this.peer))
        this.phase = 'proof'
      } else if (this.phase === 'proof') {
        if (this.queue.length < MAC_BYTES) return
        const peer = this.peer!
        verifyProof(this.opts.psk, this.self, peer, this.queue.take(MAC_BYTES))
        this.keys = deriveKeys(this.opts.psk, this.self, peer)
        this.phase = 'open'
        clearTimeout(this.timer)
        this.settleReady()
      } else if (this.phase === 'open') {
        const len = this.queue.peekU32BE()
        if (len === undefined) return
        if (len < MAC_BYTES || len > this.maxFrame + MAC_BYTES) {
          throw new LinkFrameError(`bad frame length ${len} (max payload ${this.maxFrame})`)
        }
        if (this.queue.length < 4 + len) return
        this.queue.take(4)
        const body = Buffer.from(this.queue.take(len))
        const payload = body.subarray(0, len - MAC_BYTES)
        const tag = body.subarray(len - MAC_BYTES)
        const expected = frameMac(this.keys!.recvKey, this.recvSeq++, payload)
        if (!timingSafeEqual(tag, expected))
          throw new LinkAuthError('frame MAC mismatch (tampered or garbage)')
        this.emit('message', payload)
        // A listener may have closed us.
        if ((this.phase as Phase) !== 'open') return
      } else {
        return
      }
    }
  }
}

export interface ConnectOptions extends TcpLinkOptions {
  readonly host: string
  readonly port: number
}

/** Dials a sync link server and completes the handshake. */
export async function connectSyncLink(opts: ConnectOptions): Promise<TcpSyncLink> {
  checkPsk(opts.psk)
  const socket = net.connect({ host: opts.host, port: opts.port })
  const link = new TcpSyncLink(socket, LinkRole.Dialer, opts)
  await link.ready
  return link
}

export interface SyncLinkServerEvents {
  /** An authenticated link. */
  link: (link: TcpSyncLink) => void
  /** A connection that failed the handshake (already closed). */
  rejected: (error: Error) => void
}

export class SyncLinkServer extends EventEmitter<SyncLinkServerEvents> {
  private readonly server: net.Server
  private readonly pending = new Set<TcpSyncLink>()

  constructor(opts: TcpLinkOptions) {
    super()
    checkPsk(opts.psk)
    this.server = net.createServer((socket) => {
      const link = new TcpSyncLink(socket, LinkRole.Listener, opts)
      this.pending.add(link)
      link.ready.then(
        () => {
          this.pending.delete(link)
          this.emit('link', link)
        },
        (err: Error) => {
          this.pending.delete(link)
          this.emit('rejected', err)
        },
      )
    })
  }

  listen(port = 0, host = '127.0.0.1'): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, host, () => {
        const a = this.server.address() as net.AddressInfo
        resolve({ host: a.address, port: a.port })
      })
    })
  }

  /** Stops accepting; links already handed out stay open. */
  close(): Promise<void> {
    for (const l of this.pending) l.close(new LinkClosedError('server closing'))
    return new Promise((resolve) => this.server.close(() => resolve()))
  }
}
