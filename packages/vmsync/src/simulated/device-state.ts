// Device state of the simulated VM: what is not RAM — the clock offset (like a TSC offset), NIC
// counters and the RX queue of frames delivered but not yet executed. The RX queue matters: after
// a sync the backup must execute exactly the frames the primary still had pending.
//
//   magic u32 'PVDS' | version u16 | 0 u16 | pageCount u32 | clockOffsetMs f64 | framesIn f64 |
//   framesOut f64 | executed f64 | pending u32 | pending × (len u32, bytes) | xxh128 of all before (16)
import { hashPage } from '../hashing/hash-pages.js'

export const DEVICE_MAGIC = 0x50564453 // 'PVDS'
export const DEVICE_VERSION = 1
const FIXED = 4 + 2 + 2 + 4 + 8 * 4 + 4
const CHECK = 16

export interface DeviceState {
  readonly pageCount: number
  readonly clockOffsetMs: number
  readonly framesIn: number
  readonly framesOut: number
  readonly executed: number
  readonly pending: readonly Uint8Array[]
}

export function encodeDeviceState(s: DeviceState): Uint8Array {
  const size = FIXED + s.pending.reduce((n, f) => n + 4 + f.length, 0) + CHECK
  const buf = Buffer.alloc(size)
  let o = 0
  o = buf.writeUInt32BE(DEVICE_MAGIC, o)
  o = buf.writeUInt16BE(DEVICE_VERSION, o)
  o = buf.writeUInt16BE(0, o)
  o = buf.writeUInt32BE(s.pageCount, o)
  o = buf.writeDoubleBE(s.clockOffsetMs, o)
  o = buf.writeDoubleBE(s.framesIn, o)
  o = buf.writeDoubleBE(s.framesOut, o)
  o = buf.writeDoubleBE(s.executed, o)
  o = buf.writeUInt32BE(s.pending.length, o)
  for (const f of s.pending) {
    o = buf.writeUInt32BE(f.length, o)
    buf.set(f, o)
    o += f.length
  }
  buf.set(hashPage(buf.subarray(0, o)), o)
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length)
}

/** Parses and verifies device state; throws a descriptive error on anything malformed. */
export function decodeDeviceState(bytes: Uint8Array): DeviceState {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (buf.length < FIXED + CHECK) throw new Error(`device state too short: ${buf.length} bytes`)
  const magic = buf.readUInt32BE(0)
  if (magic !== DEVICE_MAGIC) throw new Error(`not simulated-VM device state (magic 0x${magic.toString(16)})`)
  const version = buf.readUInt16BE(4)
  if (version !== DEVICE_VERSION)
    throw new Error(`unsupported device state version ${version} (expected ${DEVICE_VERSION})`)
  const body = buf.subarray(0, buf.length - CHECK)
  if (!hashPage(body).equals(buf.subarray(buf.length - CHECK)))
    throw new Error('device state checksum mismatch')
  let o = 8
  const pageCount = buf.readUInt32BE(o)
  o += 4
  const clockOffsetMs = buf.readDoubleBE(o)
  const framesIn = buf.readDoubleBE(o + 8)
  const framesOut = buf.readDoubleBE(o + 16)
  const executed = buf.readDoubleBE(o + 24)
  o += 32
  const count = buf.readUInt32BE(o)
  o += 4
  const pending: Uint8Array[] = []
  for (let i = 0; i < count; i++) {
    if (o + 4 > body.length) throw new Error(`device state truncated in pending frame ${i}`)
    const len = buf.readUInt32BE(o)
    o += 4
    if (o + len > body.length) throw new Error(`device state truncated in pending frame ${i}`)
    pending.push(Uint8Array.from(buf.subarray(o, o + len)))
    o += len
  }
  if (o !== body.length) throw new Error(`device state has ${body.length - o} trailing bytes`)
  return { pageCount, clockOffsetMs, framesIn, framesOut, executed, pending }
}
