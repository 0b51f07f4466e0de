import { randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import type { Test } from 'tap'
import { type Message, MessageType, type NodeId } from '../../src/core/types.js'
import {
  FrameCipher,
  handshakeProof,
  NONCE_BYTES,
  type SealedFrame,
  sessionKeys,
} from '../../src/transport/auth.js'
import { TRANSPORT_CONTEXT } from '../../src/transport/connection.js'
import { FrameDecoder, frameHeader } from '../../src/transport/framing.js'
import { decodeChallenge, encodeHello, encodeProof } from '../../src/transport/handshake.js'
import { TcpTransport, type TransportEvents } from '../../src/transport/transport.js'

export const KEY = Buffer.from('0123456789abcdef0123456789abcdef')

export function msg(from: NodeId, to: NodeId, term = 1, extra: Partial<Message> = {}): Message {
  return {
    type: MessageType.Heartbeat,
    from,
    to,
    term,
    logIndex: 0,
    logTerm: 0,
    commit: 0,
    entries: [],
    reject: false,
    rejectHint: 0,
    transfer: false,
    ...extra,
  }
}

/** Start transports for `ids` on ephemeral loopback ports, all knowing each other. */
export async function cluster(t: Test, ids: NodeId[], key = KEY): Promise<Map<NodeId, TcpTransport>> {
  const out = new Map<NodeId, TcpTransport>()
  const ports = new Map<NodeId, number>()
  for (const id of ids) {
    const tr = new TcpTransport({
      id,
      listen: { host: '127.0.0.1', port: 0 },
      peers: new Map(),
      clusterKey: key,
    })
    ports.set(id, await tr.start())
    out.set(id, tr)
    t.teardown(() => tr.close())
  }
  for (const [id, tr] of out)
    for (const [pid, port] of ports) if (pid !== id) tr.addPeer(pid, { host: '127.0.0.1', port })
  return out
}

/** Resolve with the first event args matching `pred`, or reject after `ms`. */
export function waitFor<E extends keyof TransportEvents>(
  tr: TcpTransport,
  event: E,
  pred: (...args: Parameters<TransportEvents[E]>) => boolean = () => true,
  ms = 5000,
): Promise<Parameters<TransportEvents[E]>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      tr.off(event, h as never)
      reject(new Error(`timed out waiting for ${String(event)}`))
    }, ms)
    const h = (...args: Parameters<TransportEvents[E]>) => {
      if (!pred(...args)) return
      clearTimeout(timer)
      tr.off(event, h as never)
      resolve(args)
    }
    tr.on(event, h as never)
  })
}

export interface RawDialer {
  readonly socket: Socket
  /** Seals (encrypts and tags) frames for the dialer→acceptor direction, as a real dialer would. */
  readonly mac: FrameCipher
  /** The Hello and Proof frames as written (length-prefixed), for replay attacks. */
  readonly helloFrame: Buffer
  readonly proofFrame: Buffer
  /** A wire frame; pass a tampered `sealed` (seq/body/tag) to forge one. */
  frame(payload: Uint8Array, sealed?: SealedFrame): Buffer
}

export interface RawDialerOptions {
  readonly key?: Uint8Array
  readonly context?: string
  /** Replace the genuine proof (e.g. reflect the acceptor's own). */
  readonly proof?: (challenge: { proof: Uint8Array; nonce: Uint8Array }, genuine: Buffer) => Uint8Array
}

/**
 * A hand-driven SecureChannel dialer: performs the handshake from the wire format up, then lets a
 * test send arbitrary frames. Resolves once the Proof is written (not once the acceptor accepted).
 */
export async function rawAuthedClient(
  port: number,
  self: NodeId,
  to: NodeId,
  opts: RawDialerOptions = {},
): Promise<RawDialer> {
  const key = opts.key ?? KEY
  const context = opts.context ?? TRANSPORT_CONTEXT
  const socket = connect({ host: '127.0.0.1', port })
  socket.setNoDelay(true) // else Nagle holds the first attack frame behind the proof's delayed ACK
  await new Promise<void>((r, j) => socket.once('connect', r).once('error', j))
  const nonce = randomBytes(NONCE_BYTES)
  const hello = encodeHello({ context: Buffer.from(context), from: self, to, nonce })
  const helloFrame = Buffer.concat([frameHeader(hello.length), hello])
  socket.write(helloFrame)
  const dec = new FrameDecoder(1024)
  const challengeBytes = await new Promise<Buffer>((resolve, reject) => {
    socket.on('data', (c: Buffer) => {
      dec.push(c)
      const f = dec.next()
      if (f) resolve(f)
    })
    socket.once('close', () => reject(new Error('closed during handshake')))
  })
  socket.removeAllListeners('data')
  const ch = decodeChallenge(challengeBytes)
  const genuine = handshakeProof(key, context, 'dialer', self, to, nonce, ch.nonce)
  const proof = encodeProof(opts.proof ? opts.proof(ch, genuine) : genuine)
  const proofFrame = Buffer.concat([frameHeader(proof.length), proof])
  socket.write(proofFrame)
  const mac = new FrameCipher(sessionKeys(key, context, self, to, nonce, ch.nonce).dialerToAcceptor)
  const frame = (payload: Uint8Array, sealed: SealedFrame = mac.seal(payload)) =>
    Buffer.concat([
      frameHeader(sealed.seq.length + sealed.body.length + sealed.mac.length),
      sealed.seq,
      sealed.body,
      sealed.mac,
    ])
  return { socket, mac, helloFrame, proofFrame, frame }
}

export function closed(socket: Socket, ms = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) return resolve()
    const timer = setTimeout(() => reject(new Error('socket was not closed by the server')), ms)
    socket.once('close', () => {
      clearTimeout(timer)
      resolve()
    })
    socket.on('error', () => {})
    socket.resume()
  })
}
