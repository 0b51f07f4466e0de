import { createServer, type Server, connect as tcpConnect } from 'node:net'
import { EventEmitter } from 'eventemitter3'
import { DEFAULT_LIMITS, type DecodeLimits } from '../codec/limits.js'
import { encodeMessage } from '../codec/message.js'
import type { Message, NodeId } from '../core/types.js'
import { Connection, type ConnectionConfig } from './connection.js'

// TCP transport between cluster members. One connection per pair: the LOWER id dials, the
// higher id accepts (so there is never a duplicate to arbitrate). Each peer has a bounded queue
// of encoded messages; when the socket is slow or down the queue fills and messages are dropped
// (Raft retransmits), counted per peer. Frames and authentication: a SecureChannel per
// connection (secure-channel.ts), carrying Raft messages (connection.ts).

export interface PeerAddress {
  readonly host: string
  readonly port: number
}

export interface TransportOptions {
  readonly id: NodeId
  readonly listen: PeerAddress
  /** Every other member's address. */
  readonly peers: ReadonlyMap<NodeId, PeerAddress>
  /** Pre-shared cluster key, at least 16 random bytes. */
  readonly clusterKey: Uint8Array
  /** Max queued messages per peer (default 8192). */
  readonly maxQueue?: number
  /** Max queued bytes per peer (default 64 MiB). */
  readonly maxQueueBytes?: number
  /** Which message to drop when the queue is full (default 'oldest': fresher state wins). */
  readonly dropPolicy?: 'oldest' | 'newest'
  /** Largest encoded message sent or accepted (default 80 MiB); larger ones are dropped and counted. */
  readonly maxFrameBytes?: number
  readonly handshakeTimeoutMs?: number
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number }
  readonly limits?: DecodeLimits
  /** Injected for deterministic jitter in tests. */
  readonly random?: () => number
}

export interface TransportEvents {
  message: (m: Message) => void
  connected: (peer: NodeId) => void
  /** Every connection that ends, with why (auth failure, malformed frame, socket closed …). */
  disconnected: (info: { readonly peer?: NodeId; readonly remote: string; readonly reason: string }) => void
}

export interface PeerStats {
  readonly connected: boolean
  readonly queued: number
  readonly dropped: number
  readonly sent: number
}

interface Peer {
  addr: PeerAddress
  queue: Uint8Array[]
  queuedBytes: number
  dropped: number
  sent: number
  conn: Connection | undefined
  dialing: boolean
  backoffMs: number
  retry: NodeJS.Timeout | undefined
  flushScheduled: boolean
}

export class TcpTransport extends EventEmitter<TransportEvents> {
  private readonly peers = new Map<NodeId, Peer>()
  private readonly pending = new Set<Connection>()
  private server: Server | undefined
  private closed = false
  private readonly cfg: ConnectionConfig
  private readonly maxQueue: number
  private readonly maxQueueBytes: number
  private readonly backoff: { initialMs: number; maxMs: number }
  private readonly random: () => number

  constructor(private readonly opts: TransportOptions) {
    super()
    if (opts.clusterKey.length < 16) throw new RangeError('clusterKey must be at least 16 bytes')
    this.cfg = {
      selfId: opts.id,
      key: opts.clusterKey,
      isMember: (id) => this.peers.has(id),
      maxFrameBytes: opts.maxFrameBytes ?? 80 * 1024 * 1024,
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 5000,
      limits: opts.limits ?? DEFAULT_LIMITS,
    }
    this.maxQueue = opts.maxQueue ?? 8192
    this.maxQueueBytes = opts.maxQueueBytes ?? 64 * 1024 * 1024
    this.backoff = opts.backoff ?? { initialMs: 20, maxMs: 1000 }
    this.random = opts.random ?? Math.random
    for (const [id, addr] of opts.peers) if (id !== opts.id) this.addPeer(id, addr)
  }

  /** Start listening; resolves with the bound port (useful with port 0). */
  async start(): Promise<number> {
    const server = createServer((socket) => this.adopt(Connection.accept(socket, this.cfg)))
    this.server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.opts.listen.port, this.opts.listen.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    server.on('error', () => {}) // accept errors (EMFILE…) must not crash the replica
    for (const id of this.peers.keys()) this.maybeDial(id)
    const addr = server.address()
    return typeof addr === 'object' && addr ? addr.port : this.opts.listen.port
  }

  /** The bound listening port (after start()). */
  get port(): number | undefined {
    const a = this.server?.address()
    return typeof a === 'object' && a ? a.port : undefined
  }

  addPeer(id: NodeId, addr: PeerAddress): void {
    if (id === this.opts.id || this.peers.has(id)) return
    this.peers.set(id, {
      addr,
      queue: [],
      queuedBytes: 0,
      dropped: 0,
      sent: 0,
      conn: undefined,
      dialing: false,
      backoffMs: this.backoff.initialMs,
      retry: undefined,
      flushScheduled: false,
    })
    if (this.server) this.maybeDial(id)
  }

  /** Forget a member: its connection is closed and it can no longer connect. */
  removePeer(id: NodeId): void {
    const p = this.peers.get(id)
    if (!p) return
    this.peers.delete(id)
    clearTimeout(p.retry)
    p.conn?.destroy('peer removed from membership')
  }

  /** Queue a message; never blocks, never throws. Returns false if it was dropped. */
  send(m: Message): boolean {
    const p = this.peers.get(m.to)
    if (!p || this.closed) return false
    const payload = encodeMessage(m)
    if (payload.length > this.cfg.maxFrameBytes) {
      p.dropped++ // the peer would refuse it (and the SecureChannel refuses to send it)
      return false
    }
    if (p.queue.length >= this.maxQueue || p.queuedBytes + payload.length > this.maxQueueBytes) {
      p.dropped++
      if (this.opts.dropPolicy === 'newest') return false
      while (
        p.queue.length > 0 &&
        (p.queue.length >= this.maxQueue || p.queuedBytes + payload.length > this.maxQueueBytes)
      ) {
        p.queuedBytes -= p.queue.shift()!.length
      }
    }
    p.queue.push(payload)
    p.queuedBytes += payload.length
    if (!p.flushScheduled && p.conn?.isOpen) {
      // Batch every message queued in this tick into one write.
      p.flushScheduled = true
      queueMicrotask(() => this.flush(p))
    }
    return true
  }

  stats(id: NodeId): PeerStats | undefined {
    const p = this.peers.get(id)
    if (!p) return undefined
    return { connected: p.conn?.isOpen ?? false, queued: p.queue.length, dropped: p.dropped, sent: p.sent }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const p of this.peers.values()) {
      clearTimeout(p.retry)
      p.conn?.destroy('transport closed')
    }
    for (const c of this.pending) c.destroy('transport closed')
    const server = this.server
    if (server) await new Promise<void>((r) => server.close(() => r()))
    this.removeAllListeners()
  }

  private flush(p: Peer): void {
    p.flushScheduled = false
    const conn = p.conn
    if (!conn?.writable || p.queue.length === 0) return
    const batch = p.queue
    p.queue = []
    p.queuedBytes = 0
    p.sent += batch.length
    conn.send(batch)
  }

  private maybeDial(id: NodeId): void {
    const p = this.peers.get(id)
    if (!p || this.closed || p.conn || p.dialing || p.retry || this.opts.id > id) return
    p.dialing = true
    const socket = tcpConnect({ host: p.addr.host, port: p.addr.port })
    this.adopt(Connection.dial(socket, this.cfg, id))
  }

  private scheduleRedial(id: NodeId): void {
    const p = this.peers.get(id)
    if (!p || this.closed || p.retry || this.opts.id > id) return
    // Exponential backoff with jitter in [delay/2, delay) so restarted peers don't sync up.
    const delay = p.backoffMs * (0.5 + this.random() / 2)
    p.backoffMs = Math.min(p.backoffMs * 2, this.backoff.maxMs)
    p.retry = setTimeout(() => {
      p.retry = undefined
      this.maybeDial(id)
    }, delay)
  }

  private adopt(conn: Connection): void {
    this.pending.add(conn)
    conn.on('open', (peerId) => {
      this.pending.delete(conn)
      const p = this.peers.get(peerId)
      if (!p || this.closed) return conn.destroy('not a member')
      p.dialing = false
      p.backoffMs = this.backoff.initialMs
      // A peer that restarted reconnects while we still hold its dead socket: newest wins.
      if (p.conn && p.conn !== conn) p.conn.destroy('replaced by a new connection from the same peer')
      p.conn = conn
      this.emit('connected', peerId)
      this.flush(p)
    })
    conn.on('message', (m) => this.emit('message', m))
    conn.on('drain', () => {
      const p = conn.peer === undefined ? undefined : this.peers.get(conn.peer)
      if (p?.conn === conn) this.flush(p)
    })
    conn.on('close', (reason) => {
      this.pending.delete(conn)
      const id = conn.peer
      const p = id === undefined ? undefined : this.peers.get(id)
      if (p && (p.conn === conn || (p.dialing && p.conn === undefined))) {
        if (p.conn === conn) p.conn = undefined
        p.dialing = false
        this.scheduleRedial(id!)
      }
      if (!this.closed) this.emit('disconnected', { peer: id, remote: conn.remote, reason })
    })
  }
}
