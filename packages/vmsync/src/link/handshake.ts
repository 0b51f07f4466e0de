// PSK challenge-response for the sync link. Both sides prove knowledge of the pre-shared key
// over fresh nonces (so a recorded session cannot be replayed) and derive one MAC key per
// direction (so a frame cannot be reflected back to its sender).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { LinkAuthError, LinkFrameError } from './errors.js'

export const HELLO_MAGIC = Buffer.from('PLVS', 'ascii')
export const LINK_VERSION = 1
export const NONCE_BYTES = 32
export const MAC_BYTES = 32
/** magic(4) version(1) role(1) nonce(32) */
export const HELLO_BYTES = 4 + 1 + 1 + NONCE_BYTES

export enum LinkRole {
  Dialer = 0,
  Listener = 1,
}

export interface Hello {
  readonly role: LinkRole
  readonly nonce: Buffer
}

export interface SessionKeys {
  readonly sendKey: Buffer
  readonly recvKey: Buffer
}

export function newHello(role: LinkRole): Hello {
  return { role, nonce: randomBytes(NONCE_BYTES) }
}

export function encodeHello(h: Hello): Buffer {
  return Buffer.concat([HELLO_MAGIC, Buffer.from([LINK_VERSION, h.role]), h.nonce])
}

export function decodeHello(b: Buffer): Hello {
  if (!b.subarray(0, 4).equals(HELLO_MAGIC)) {
    throw new LinkFrameError(`not a Plover sync link: bad magic ${b.subarray(0, 4).toString('hex')}`)
  }
  if (b[4] !== LINK_VERSION) throw new LinkFrameError(`unsupported sync link version ${b[4]}`)
  const role = b[5]
  if (role !== LinkRole.Dialer && role !== LinkRole.Listener)
    throw new LinkFrameError(`bad link role ${role}`)
  return { role, nonce: Buffer.from(b.subarray(6, 6 + NONCE_BYTES)) }
}

function mac(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const h = createHmac('sha256', key)
  for (const p of parts) h.update(p)
  return h.digest()
}

/** What `self` sends to prove it knows the PSK, bound to both nonces and its own role. */
export function proofFor(psk: Uint8Array, self: Hello, peer: Hello): Buffer {
  return mac(psk, Buffer.from('plover-vmsync-proof'), Buffer.from([self.role]), peer.nonce, self.nonce)
}

export function verifyProof(psk: Uint8Array, self: Hello, peer: Hello, proof: Buffer): void {
  if (peer.role === self.role) throw new LinkAuthError('peer claims our own link role (reflection?)')
  if (peer.nonce.equals(self.nonce)) throw new LinkAuthError('peer echoed our nonce (reflection?)')
  const expected = proofFor(psk, peer, self)
  if (proof.length !== expected.length || !timingSafeEqual(proof, expected)) {
    throw new LinkAuthError('peer failed the pre-shared-key challenge')
  }
}

export function deriveKeys(psk: Uint8Array, self: Hello, peer: Hello): SessionKeys {
  const dialer = self.role === LinkRole.Dialer ? self : peer
  const listener = self.role === LinkRole.Dialer ? peer : self
  const d2l = mac(psk, Buffer.from('plover-vmsync-d2l'), dialer.nonce, listener.nonce)
  const l2d = mac(psk, Buffer.from('plover-vmsync-l2d'), dialer.nonce, listener.nonce)
  return self.role === LinkRole.Dialer ? { sendKey: d2l, recvKey: l2d } : { sendKey: l2d, recvKey: d2l }
}

/** Per-frame MAC over the implicit sequence number and the payload (replay/reorder-proof). */
export function frameMac(key: Uint8Array, seq: bigint, payload: Uint8Array): Buffer {
  const s = Buffer.allocUnsafe(8)
  s.writeBigUInt64BE(seq)
  return mac(key, s, payload)
}
