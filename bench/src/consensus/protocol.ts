// Bench client protocol between the load generator and a replica process (not part of the SDK):
//   request  = u32 len | u32 req | data
//   response = u32 len | u32 req | u8 ok | f64 index-or-leader-hint
import { FrameDecoder, frameHeader } from '@plover/consensus'

/** The `u32 len | u32 req` header of a request; the client writes the data after it. */
export function encodeRequestHeader(req: number, dataLength: number): Buffer {
  const h = Buffer.allocUnsafe(8)
  h.writeUInt32BE(dataLength + 4, 0)
  h.writeUInt32BE(req, 4)
  return h
}

export function encodeResponse(req: number, ok: boolean, value: number): Buffer {
  const b = Buffer.allocUnsafe(17)
  b.writeUInt32BE(13, 0)
  b.writeUInt32BE(req, 4)
  b.writeUInt8(ok ? 1 : 0, 8)
  b.writeDoubleBE(value, 9)
  return b
}

export function parseRequest(frame: Buffer): { req: number; data: Buffer } {
  return { req: frame.readUInt32BE(0), data: frame.subarray(4) }
}

export function parseResponse(frame: Buffer): { req: number; ok: boolean; value: number } {
  return { req: frame.readUInt32BE(0), ok: frame.readUInt8(4) === 1, value: frame.readDoubleBE(5) }
}

export { FrameDecoder, frameHeader }
