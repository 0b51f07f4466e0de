// Device state as a delta against the one the backup already holds. QEMU's device-state stream
// (CPU, devices, plus ROM and ACPI blocks that x-ignore-shared still sends) is ~570 KiB and almost
// all of it is the same from one sync to the next, so a sync sends only the chunks that changed.
// Format: u32 total length | u32 chunk size | u32 count | count × u32 chunk index (ascending) |
// the changed chunks' bytes, in index order (the last chunk of the state may be short).
import { ProtocolViolationError } from './errors.js'

const HEADER = 12
export const DEFAULT_DELTA_CHUNK = 64

/** The chunks of `next` that differ from `base` (or lie beyond it). */
export function encodeDeviceStateDelta(
  base: Uint8Array,
  next: Uint8Array,
  chunk = DEFAULT_DELTA_CHUNK,
): Uint8Array {
  const a = Buffer.from(base.buffer, base.byteOffset, base.byteLength)
  const b = Buffer.from(next.buffer, next.byteOffset, next.byteLength)
  const chunks = Math.ceil(b.length / chunk)
  const changed: number[] = []
  for (let c = 0; c < chunks; c++) {
    const start = c * chunk
    const end = Math.min(start + chunk, b.length)
    if (end > a.length || a.compare(b, start, end, start, end) !== 0) changed.push(c)
  }
  let dataBytes = 0
  for (const c of changed) dataBytes += Math.min(chunk, b.length - c * chunk)
  const out = Buffer.allocUnsafe(HEADER + changed.length * 4 + dataBytes)
  out.writeUInt32LE(b.length, 0)
  out.writeUInt32LE(chunk, 4)
  out.writeUInt32LE(changed.length, 8)
  let pos = HEADER
  for (const c of changed) {
    out.writeUInt32LE(c, pos)
    pos += 4
  }
  for (const c of changed) {
    const start = c * chunk
    pos += b.copy(out, pos, start, Math.min(start + chunk, b.length))
  }
  return out
}

/**
 * `base` with the delta applied. Throws ProtocolViolationError on any inconsistency (a peer's
 * bytes never become a RangeError or an oversized allocation).
 */
export function applyDeviceStateDelta(base: Uint8Array, delta: Uint8Array, maxBytes = 256 << 20): Uint8Array {
  const d = Buffer.from(delta.buffer, delta.byteOffset, delta.byteLength)
  const bad = (why: string): never => {
    throw new ProtocolViolationError(`device-state delta: ${why}`)
  }
  if (d.length < HEADER) bad(`${d.length} bytes, shorter than its header`)
  const total = d.readUInt32LE(0)
  const chunk = d.readUInt32LE(4)
  const count = d.readUInt32LE(8)
  if (total > maxBytes) bad(`state of ${total} bytes exceeds ${maxBytes}`)
  if (chunk === 0) bad('chunk size 0')
  const chunks = Math.ceil(total / chunk)
  if (count > chunks) bad(`${count} chunks for a state of ${chunks}`)
  if (HEADER + count * 4 > d.length) bad('truncated chunk index list')
  const out = new Uint8Array(total)
  out.set(base.subarray(0, Math.min(base.length, total)))
  let covered = Math.min(base.length, total)
  let pos = HEADER + count * 4
  let prev = -1
  for (let i = 0; i < count; i++) {
    const c = d.readUInt32LE(HEADER + i * 4)
    if (c <= prev || c >= chunks) bad(`chunk index ${c} out of order or range`)
    prev = c
    const start = c * chunk
    const len = Math.min(chunk, total - start)
    if (pos + len > d.length) bad('truncated chunk data')
    // Bytes beyond the base must all come from the delta, in one contiguous run.
    if (start > covered) bad(`chunk ${c} leaves a gap after byte ${covered} of the base`)
    out.set(d.subarray(pos, pos + len), start)
    covered = Math.max(covered, start + len)
    pos += len
  }
  if (covered < total) bad(`state ends at ${covered} of ${total} bytes`)
  if (pos !== d.length) bad(`${d.length - pos} trailing bytes`)
  return out
}
