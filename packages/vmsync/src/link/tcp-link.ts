// Authenticated, encrypted SyncLink over TCP: a @plover/consensus SecureChannel (PSK
// challenge-response with both nonces, per-direction HKDF session keys, AES-256-GCM frames checked
// for integrity and replay) under the protocol context SYNC_LINK_CONTEXT, so a handshake
// or frame of the consensus transport, which may share the key, is useless here. Channel
// failures are mapped to this package's typed link errors (the SecureChannelError is the
// `cause`); any garbage ends the link, nothing is delivered.

import net from 'node:net'
import {
  MIN_KEY_BYTES,
  SecureChannel,
  SecureChannelError,
  type SecureChannelFailure,
} from '@plover/consensus'
import { EventEmitter } from 'eventemitter3'
import { LinkAuthError, LinkClosedError, type LinkError, LinkFrameError } from './errors.js'
import type { SyncLink, SyncLinkEvents } from './link.js'

export interface TcpLinkOptions {
  /** Pre-shared key, at least 16 bytes. */
  readonly psk: Uint8Array
  /** Largest payload accepted or sent (default 16 MiB): bounds what a peer can make us buffer. */
  readonly maxFrameBytes?: number
  /** Handshake must finish within this (default 5000 ms). */
  readonly handshakeTimeoutMs?: number
}

/** SecureChannel protocol context of the sync link. */
export const SYNC_LINK_CONTEXT = 'plover-vmsync-link-v2'
/**
 * The sync link authenticates roles, not replicas: whoever holds the PSK may dial. These are the
 * SecureChannel ids of the two roles (so a dialer's proof can never pass as a listener's).
 */
export const SYNC_DIALER_ID = 1
export const SYNC_LISTENER_ID = 2

const DEFAULT_MAX_FRAME = 16 * 1024 * 1024

function checkPsk(psk: Uint8Array): void {
  if (psk.length < MIN_KEY_BYTES)
    throw new LinkAuthError(`pre-shared key must be at least ${MIN_KEY_BYTES} bytes`)
}

const AUTH_FAILURES: ReadonlySet<SecureChannelFailure> = new Set([
  'bad-key',
  'unknown-peer',
  'wrong-peer',
  'bad-mac',
  'replay',
  'reordered',
  'timeout',
])
const FRAME_FAILURES: ReadonlySet<SecureChannelFailure> = new Set([
  'oversized',
  'malformed',
  'protocol-mismatch',
])

/**
 * SecureChannelError -> link error: authentication, integrity and replay failures (and a handshake
 * that never finishes) are LinkAuthError; non-Plover or oversized bytes LinkFrameError; the socket
 * going away LinkClosedError.
 */
export function toLinkError(err: unknown): LinkError {
  if (!(err instanceof SecureChannelError)) return new LinkClosedError(String(err), { cause: err })
  const message = `sync link: ${err.message}`
  if (AUTH_FAILURES.has(err.reason)) return new LinkAuthError(message, { cause: err })
  if (FRAME_FAILURES.has(err.reason)) return new LinkFrameError(message, { cause: err })
  return new LinkClosedError(message, { cause: err })
}

export class TcpSyncLink extends EventEmitter<SyncLinkEvents> implements SyncLink {
  /** Resolves when authenticated; rejects (and closes) on any handshake failure. */
  readonly ready: Promise<void>
  private readonly channel: SecureChannel
  private readonly maxFrame: number
  private closing = false
  private opened = false
  private localError: Error | undefined
  private settleReady!: (err?: Error) => void
  private openListeners: (() => void)[] = []

  constructor(socket: net.Socket, role: 'dialer' | 'listener', opts: TcpLinkOptions) {
    super()
    checkPsk(opts.psk)
    this.maxFrame = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME
    this.ready = new Promise<void>((resolve, reject) => {
      this.settleReady = (err) => (err ? reject(err) : resolve())
    })
    // Unhandled-rejection guard: callers that only listen for 'close' must not crash the process.
    this.ready.catch(() => {})
    const common = {
      key: opts.psk,
      context: SYNC_LINK_CONTEXT,
      maxFrameBytes: this.maxFrame,
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 5000,
    }
    this.channel =
      role === 'dialer'
        ? new SecureChannel(socket, {
            ...common,
            role: 'dialer',
            localId: SYNC_DIALER_ID,
            remoteId: SYNC_LISTENER_ID,
          })
        : new SecureChannel(socket, {
            ...common,
            role: 'acceptor',
            localId: SYNC_LISTENER_ID,
            acceptRemote: (id) => id === SYNC_DIALER_ID,
          })
    this.channel.on('open', () => {
      this.opened = true
      const listeners = this.openListeners
      this.openListeners = []
      for (const fn of listeners) fn()
      this.settleReady()
    })
    this.channel.on('frame', (payload) => this.emit('message', payload))
    this.channel.on('close', (err) => {
      const error = this.closing ? this.localError : toLinkError(err)
      this.closing = true
      if (!this.opened) this.settleReady(error ?? new LinkClosedError('sync link closed during handshake'))
      this.emit('close', error)
    })
  }

  get isOpen(): boolean {
    return !this.closing && this.channel.isOpen
  }

  /**
   * Runs `fn` synchronously when the handshake completes (at once if it has). WHY not `ready`: a
   * promise settles a microtask later, after the channel already delivered the frames that came
   * in the same TCP segment as the handshake's last message — with nobody listening yet.
   */
  whenOpen(fn: () => void): void {
    if (this.opened) fn()
    else this.openListeners.push(fn)
  }

  async send(payload: Uint8Array): Promise<void> {
    if (!this.isOpen) throw new LinkClosedError('sync link is not open')
    if (payload.length > this.maxFrame) {
      throw new LinkFrameError(`payload of ${payload.length} bytes exceeds maxFrameBytes ${this.maxFrame}`)
    }
    await new Promise<void>((resolve, reject) => {
      try {
        this.channel.send(payload, (err) => (err ? reject(new LinkClosedError(err.message)) : resolve()))
      } catch (err) {
        reject(toLinkError(err))
      }
    })
  }

  close(error?: Error): void {
    if (this.closing) return
    this.closing = true
    this.localError = error
    this.channel.close(error?.message ?? 'sync link closed locally') // emits 'close' synchronously
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
  const link = new TcpSyncLink(socket, 'dialer', opts)
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
      const link = new TcpSyncLink(socket, 'listener', opts)
      this.pending.add(link)
      // Synchronously at open: a 'link' listener attaches its 'message' listener before the
      // frames that followed the handshake in the same segment are delivered.
      link.whenOpen(() => {
        this.pending.delete(link)
        this.emit('link', link)
      })
      link.ready.catch((err: Error) => {
        this.pending.delete(link)
        this.emit('rejected', err)
      })
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
