import { ByteReader } from '../codec/reader.js'
import { ByteWriter } from '../codec/writer.js'
import type { NodeId } from '../core/types.js'
import { NONCE_BYTES, PROOF_BYTES } from './auth.js'

// SecureChannel handshake messages (each sent as one length-prefixed frame, before any MAC
// exists). Every decoder takes untrusted bytes and throws only DecodeError.

/** 2: explicit per-frame sequence numbers and a protocol context in Hello. */
export const HANDSHAKE_VERSION = 2
const MAGIC = 0x504c5652 // "PLVR"
const HELLO = 1
const CHALLENGE = 2
const PROOF = 3
/** Longest protocol context (UTF-8 bytes) a Hello may carry. */
export const MAX_CONTEXT_BYTES = 64
/** Larger handshake frames are refused before parsing. */
export const MAX_HANDSHAKE_FRAME = 160

export interface Hello {
  /** The protocol the dialer wants to speak (SecureChannel `context`), UTF-8. */
  readonly context: Uint8Array
  readonly from: NodeId
  readonly to: NodeId
  readonly nonce: Uint8Array
}
export interface Challenge {
  readonly from: NodeId
  readonly nonce: Uint8Array
  readonly proof: Uint8Array
}

function header(w: ByteWriter, kind: number): void {
  w.u32(MAGIC)
  w.u8(HANDSHAKE_VERSION)
  w.u8(kind)
}

function readHeader(bytes: Uint8Array, kind: number): ByteReader {
  const r = new ByteReader(bytes)
  if (r.u32('magic') !== MAGIC) r.fail('not a Plover secure channel handshake (bad magic)')
  const v = r.u8('version')
  if (v !== HANDSHAKE_VERSION) r.fail(`unsupported handshake version ${v}`)
  const k = r.u8('kind')
  if (k !== kind) r.fail(`expected handshake message ${kind}, got ${k}`)
  return r
}

export function encodeHello(h: Hello): Uint8Array {
  const w = new ByteWriter(128)
  header(w, HELLO)
  w.bytes(h.context)
  w.uvarint(h.from)
  w.uvarint(h.to)
  w.raw(h.nonce)
  return w.finish()
}

export function decodeHello(bytes: Uint8Array): Hello {
  const r = readHeader(bytes, HELLO)
  const context = r.bytes(MAX_CONTEXT_BYTES, 'context')
  const from = r.uvarint('from')
  const to = r.uvarint('to')
  const nonce = r.raw(NONCE_BYTES, 'nonce')
  r.expectEnd('hello')
  return { context, from, to, nonce }
}

export function encodeChallenge(c: Challenge): Uint8Array {
  const w = new ByteWriter(96)
  header(w, CHALLENGE)
  w.uvarint(c.from)
  w.raw(c.nonce)
  w.raw(c.proof)
  return w.finish()
}

export function decodeChallenge(bytes: Uint8Array): Challenge {
  const r = readHeader(bytes, CHALLENGE)
  const from = r.uvarint('from')
  const nonce = r.raw(NONCE_BYTES, 'nonce')
  const proof = r.raw(PROOF_BYTES, 'proof')
  r.expectEnd('challenge')
  return { from, nonce, proof }
}

export function encodeProof(proof: Uint8Array): Uint8Array {
  const w = new ByteWriter(48)
  header(w, PROOF)
  w.raw(proof)
  return w.finish()
}

export function decodeProof(bytes: Uint8Array): Uint8Array {
  const r = readHeader(bytes, PROOF)
  const proof = r.raw(PROOF_BYTES, 'proof')
  r.expectEnd('proof')
  return proof
}
