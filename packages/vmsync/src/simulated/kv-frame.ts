// Wire format of the simulated key-value service: one request or response per frame, big-endian.
//
//   request:  magic u16 'PK' | version u8 | op u8 | clientId u32 | requestId u32 | keyLen u16 | valLen u32 | key | value
//   response: magic u16 'PK' | version u8 | op|0x80 u8 | clientId u32 | requestId u32 | status u8 | 0 u8 | valLen u32 | value
export const KV_MAGIC = 0x504b
export const KV_VERSION = 1
export const KV_HEADER_BYTES = 18
export const KV_RESPONSE_FLAG = 0x80

export enum KvOp {
  Get = 1,
  Set = 2,
  Del = 3,
  Incr = 4,
}

export enum KvStatus {
  Ok = 0,
  NotFound = 1,
  BadRequest = 2,
  TooLarge = 3,
  OutOfMemory = 4,
  NotANumber = 5,
}

export interface KvRequest {
  readonly op: KvOp
  readonly clientId: number
  readonly requestId: number
  readonly key: Uint8Array
  readonly value: Uint8Array
}

export interface KvResponse {
  readonly op: KvOp
  readonly clientId: number
  readonly requestId: number
  readonly status: KvStatus
  readonly value: Uint8Array
}

const enc = new TextEncoder()
const bytes = (v: Uint8Array | string | undefined): Uint8Array =>
  v === undefined ? new Uint8Array(0) : typeof v === 'string' ? enc.encode(v) : v

export function encodeKvRequest(req: {
  op: KvOp
  clientId: number
  requestId: number
  key: Uint8Array | string
  value?: Uint8Array | string
}): Uint8Array {
  const key = bytes(req.key)
  const value = bytes(req.value)
  if (key.length > 0xffff) throw new RangeError(`key of ${key.length} bytes exceeds 65535`)
  const frame = new Uint8Array(KV_HEADER_BYTES + key.length + value.length)
  const dv = new DataView(frame.buffer)
  dv.setUint16(0, KV_MAGIC)
  dv.setUint8(2, KV_VERSION)
  dv.setUint8(3, req.op)
  dv.setUint32(4, req.clientId >>> 0)
  dv.setUint32(8, req.requestId >>> 0)
  dv.setUint16(12, key.length)
  dv.setUint32(14, value.length)
  frame.set(key, KV_HEADER_BYTES)
  frame.set(value, KV_HEADER_BYTES + key.length)
  return frame
}

export function encodeKvResponse(res: KvResponse): Uint8Array {
  const frame = new Uint8Array(KV_HEADER_BYTES + res.value.length)
  const dv = new DataView(frame.buffer)
  dv.setUint16(0, KV_MAGIC)
  dv.setUint8(2, KV_VERSION)
  dv.setUint8(3, res.op | KV_RESPONSE_FLAG)
  dv.setUint32(4, res.clientId >>> 0)
  dv.setUint32(8, res.requestId >>> 0)
  dv.setUint8(12, res.status)
  dv.setUint32(14, res.value.length)
  frame.set(res.value, KV_HEADER_BYTES)
  return frame
}

/** Parses the fixed header common to requests and responses; null if this is not a KV frame. */
function header(frame: Uint8Array): { dv: DataView; op: number } | null {
  if (frame.length < KV_HEADER_BYTES) return null
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength)
  if (dv.getUint16(0) !== KV_MAGIC || dv.getUint8(2) !== KV_VERSION) return null
  return { dv, op: dv.getUint8(3) }
}

export type DecodedRequest =
  | { readonly kind: 'request'; readonly request: KvRequest }
  /** A KV header with an invalid body: the service answers BadRequest to this client/request. */
  | { readonly kind: 'bad'; readonly op: number; readonly clientId: number; readonly requestId: number }
  /** Not a KV frame at all: the service drops it. */
  | { readonly kind: 'foreign' }

export function decodeKvRequest(frame: Uint8Array): DecodedRequest {
  const h = header(frame)
  if (h === null) return { kind: 'foreign' }
  const { dv, op } = h
  const clientId = dv.getUint32(4)
  const requestId = dv.getUint32(8)
  const keyLen = dv.getUint16(12)
  const valLen = dv.getUint32(14)
  const validOp = op >= KvOp.Get && op <= KvOp.Incr
  if (!validOp || KV_HEADER_BYTES + keyLen + valLen !== frame.length || keyLen === 0) {
    return { kind: 'bad', op: op & 0x7f, clientId, requestId }
  }
  const key = frame.subarray(KV_HEADER_BYTES, KV_HEADER_BYTES + keyLen)
  const value = frame.subarray(KV_HEADER_BYTES + keyLen)
  return { kind: 'request', request: { op: op as KvOp, clientId, requestId, key, value } }
}

/** Decodes a response frame; throws on anything else (responses come only from the service). */
export function decodeKvResponse(frame: Uint8Array): KvResponse {
  const h = header(frame)
  if (h === null || (h.op & KV_RESPONSE_FLAG) === 0) throw new Error('not a KV response frame')
  const { dv } = h
  const valLen = dv.getUint32(14)
  if (KV_HEADER_BYTES + valLen !== frame.length) {
    throw new Error(
      `KV response length mismatch: header says ${valLen} value bytes, frame has ${frame.length - KV_HEADER_BYTES}`,
    )
  }
  return {
    op: (h.op & 0x7f) as KvOp,
    clientId: dv.getUint32(4),
    requestId: dv.getUint32(8),
    status: dv.getUint8(12) as KvStatus,
    value: frame.slice(KV_HEADER_BYTES),
  }
}
