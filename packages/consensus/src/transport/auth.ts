import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto'
import type { NodeId } from '../core/types.js'

// Pre-shared-key mutual authentication (challenge–response) and per-frame MACs.
//   dialer A → acceptor B : Hello(A, B, nonceA)
//   B → A                 : Challenge(B, nonceB, HMAC(K, "acceptor" | A | B | nonceA | nonceB))
//   A → B                 : Proof(HMAC(K, "dialer" | A | B | nonceA | nonceB))
// Both proofs bind both fresh nonces and both ids, so a recorded handshake cannot be replayed and
// a proof cannot be reflected back. Session keys (one per direction) come from HKDF over the key
// and the nonces; every frame then carries HMAC(sessionKey, seq | payload) truncated to 16 bytes,
// and the implicit per-direction sequence number makes a replayed or reordered frame fail.

export const NONCE_BYTES = 32
export const MAC_BYTES = 16
const LABEL = 'plover-transport-v1'

function transcript(
  role: 'dialer' | 'acceptor',
  dialer: NodeId,
  acceptor: NodeId,
  na: Uint8Array,
  nb: Uint8Array,
) {
  const ids = Buffer.allocUnsafe(16)
  ids.writeDoubleBE(dialer, 0)
  ids.writeDoubleBE(acceptor, 8)
  return [Buffer.from(`${LABEL} ${role}`), ids, na, nb]
}

export function handshakeProof(
  key: Uint8Array,
  role: 'dialer' | 'acceptor',
  dialer: NodeId,
  acceptor: NodeId,
  nonceDialer: Uint8Array,
  nonceAcceptor: Uint8Array,
): Buffer {
  const h = createHmac('sha256', key)
  for (const part of transcript(role, dialer, acceptor, nonceDialer, nonceAcceptor)) h.update(part)
  return h.digest()
}

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
  dialer: NodeId,
  acceptor: NodeId,
  nonceDialer: Uint8Array,
  nonceAcceptor: Uint8Array,
): SessionKeys {
  const salt = Buffer.concat([nonceDialer, nonceAcceptor])
  const info = Buffer.from(`${LABEL} session ${dialer}>${acceptor}`)
  const okm = Buffer.from(hkdfSync('sha256', key, salt, info, 64))
  return { dialerToAcceptor: okm.subarray(0, 32), acceptorToDialer: okm.subarray(32) }
}

/** One direction of an authenticated connection: MAC with an implicit, increasing sequence. */
export class FrameMac {
  private seq = 0n
  private readonly seqBuf = Buffer.allocUnsafe(8)

  constructor(private readonly key: Buffer) {}

  /** MAC for the next frame in this direction (advances the sequence). */
  next(payload: Uint8Array): Buffer {
    this.seqBuf.writeBigUInt64BE(this.seq++, 0)
    return createHmac('sha256', this.key).update(this.seqBuf).update(payload).digest().subarray(0, MAC_BYTES)
  }

  /** Verify the next received frame's MAC (advances the sequence either way). */
  verify(payload: Uint8Array, mac: Uint8Array): boolean {
    const want = this.next(payload)
    return mac.length === MAC_BYTES && timingSafeEqual(want, mac)
  }
}
