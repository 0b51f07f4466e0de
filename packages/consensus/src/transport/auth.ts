import { createCipheriv, createDecipheriv, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto'
import type { NodeId } from '../core/types.js'

// The cryptography of a SecureChannel (secure-channel.ts): pre-shared-key mutual authentication
// (challenge–response), per-direction session keys and authenticated encryption of every frame.
//   dialer A → acceptor B : Hello(ctx, A, B, nonceA)
//   B → A                 : Challenge(B, nonceB, HMAC(K, T("acceptor")))
//   A → B                 : Proof(HMAC(K, T("dialer")))
//   T(role) = LABEL | len(ctx) | ctx | role | A | B | nonceA | nonceB
// Both proofs bind both fresh nonces, both ids and the protocol context (so a recorded handshake
// cannot be replayed, a proof cannot be reflected back, and one protocol's handshake is useless
// for another that shares the key). Session keys (one per direction) come from HKDF over the key,
// the nonces, the ids and the context. Every frame is AES-256-GCM under its direction's key, with
// its sequence number as the nonce (unique per key: keys are fresh per connection) and as
// associated data; the receiver accepts only the next sequence number, so a replayed, reordered
// or dropped frame is refused. WHY encrypt: the frames carry clients' traffic to the VM and, on
// the sync link, pages of its memory.

export const NONCE_BYTES = 32
/** Handshake proofs are full HMAC-SHA256 outputs. */
export const PROOF_BYTES = 32
/** A frame's GCM authentication tag. */
export const MAC_BYTES = 16
export const SEQ_BYTES = 8
/** Shortest pre-shared key accepted. */
export const MIN_KEY_BYTES = 16
// v3: frames encrypted (v2 only authenticated them); the versions refuse each other's handshakes.
const LABEL = 'plover-secure-channel-v3'

export type HandshakeRole = 'dialer' | 'acceptor'

function bind(context: string, ...rest: Uint8Array[]): Uint8Array[] {
  const ctx = Buffer.from(context, 'utf8')
  const len = Buffer.allocUnsafe(4)
  len.writeUInt32BE(ctx.length, 0)
  return [Buffer.from(LABEL), len, ctx, ...rest]
}

function ids(dialer: NodeId, acceptor: NodeId): Buffer {
  const b = Buffer.allocUnsafe(16)
  b.writeDoubleBE(dialer, 0)
  b.writeDoubleBE(acceptor, 8)
  return b
}

/** What `role` sends to prove it knows `key`, bound to the context, both ids and both nonces. */
export function handshakeProof(
  key: Uint8Array,
  context: string,
  role: HandshakeRole,
  dialer: NodeId,
  acceptor: NodeId,
  nonceDialer: Uint8Array,
  nonceAcceptor: Uint8Array,
): Buffer {
  const h = createHmac('sha256', key)
  const parts = bind(context, Buffer.from([role === 'dialer' ? 0 : 1]), ids(dialer, acceptor))
  for (const part of [...parts, nonceDialer, nonceAcceptor]) h.update(part)
  return h.digest()
}

/** Constant-time comparison of a received proof with the expected one. */
export function proofMatches(expected: Buffer, got: Uint8Array): boolean {
  return got.length === expected.length && timingSafeEqual(expected, got)
}

export interface SessionKeys {
  /** Key for frames the dialer sends. */
  readonly dialerToAcceptor: Buffer
  readonly acceptorToDialer: Buffer
}

export function sessionKeys(
  key: Uint8Array,
  context: string,
  dialer: NodeId,
  acceptor: NodeId,
  nonceDialer: Uint8Array,
  nonceAcceptor: Uint8Array,
): SessionKeys {
  const salt = Buffer.concat([nonceDialer, nonceAcceptor])
  const info = Buffer.concat(bind(context, Buffer.from(' session'), ids(dialer, acceptor)))
  const okm = Buffer.from(hkdfSync('sha256', key, salt, info, 64))
  return { dialerToAcceptor: okm.subarray(0, 32), acceptorToDialer: okm.subarray(32) }
}

/** Result of checking a received frame: authentic and next, a bad tag, or authentic but out of order. */
export type FrameCheck = 'ok' | 'bad-mac' | 'replay' | 'reordered'

/** A sealed frame: its sequence number, the encrypted payload and the authentication tag. */
export interface SealedFrame {
  readonly seq: Buffer
  readonly body: Buffer
  readonly mac: Buffer
}

const GCM = 'aes-256-gcm'

/** The 96-bit GCM nonce of a frame: 4 zero bytes and its 64-bit sequence number. */
function nonceOf(seq: Uint8Array): Buffer {
  const iv = Buffer.alloc(12)
  iv.set(seq, 4)
  return iv
}

/**
 * One direction of a channel: frames carry an explicit u64 sequence number, authenticated with
 * the payload. The sender numbers frames 0, 1, 2 …; the receiver accepts only the next number,
 * after the tag for the claimed number verified (so an out-of-order verdict is about an
 * authentic frame).
 */
export class FrameCipher {
  private seq = 0n

  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new RangeError('a frame key is 32 bytes')
  }

  /** The next sequence number of this direction (sender: to send; receiver: expected). */
  get nextSeq(): bigint {
    return this.seq
  }

  /** Sender: encrypt and tag the next frame (advances the sequence). */
  seal(payload: Uint8Array): SealedFrame {
    const seq = Buffer.allocUnsafe(SEQ_BYTES)
    seq.writeBigUInt64BE(this.seq++, 0)
    const c = createCipheriv(GCM, this.key, nonceOf(seq), { authTagLength: MAC_BYTES })
    c.setAAD(seq)
    const head = c.update(payload)
    const tail = c.final()
    const body = tail.length === 0 ? head : Buffer.concat([head, tail])
    return { seq, body, mac: c.getAuthTag() }
  }

  /** Receiver: check and decrypt a frame (advances the sequence only when it is accepted). */
  open(seq: Uint8Array, body: Uint8Array, mac: Uint8Array): { check: FrameCheck; payload?: Buffer } {
    if (seq.length !== SEQ_BYTES || mac.length !== MAC_BYTES) return { check: 'bad-mac' }
    const d = createDecipheriv(GCM, this.key, nonceOf(seq), { authTagLength: MAC_BYTES })
    d.setAAD(seq)
    d.setAuthTag(mac)
    const head = d.update(body)
    let tail: Buffer
    try {
      tail = d.final()
    } catch {
      return { check: 'bad-mac' }
    }
    const got = Buffer.from(seq.buffer, seq.byteOffset, SEQ_BYTES).readBigUInt64BE(0)
    if (got < this.seq) return { check: 'replay' }
    if (got > this.seq) return { check: 'reordered' }
    this.seq++
    return { check: 'ok', payload: tail.length === 0 ? head : Buffer.concat([head, tail]) }
  }
}
