import { crc32c } from '../codec/crc32c.js'
import { DecodeError } from '../codec/errors.js'
import { DEFAULT_LIMITS, type DecodeLimits } from '../codec/limits.js'
import { ByteReader } from '../codec/reader.js'
import { readSnapshotMeta, writeSnapshotMeta } from '../codec/structs.js'
import { ByteWriter } from '../codec/writer.js'
import type { Snapshot, SnapshotMeta } from '../core/types.js'

// Snapshot file (version 1):
//   "PLSN" | u8 version | u32 headerLen | header | u32 crc32c(all before) | data
//   header = varint index, varint term, membership, varint dataLen, u32 crc32c(data)
// Header and data have separate checksums so a reader can validate metadata without trusting data.

const MAGIC = [0x50, 0x4c, 0x53, 0x4e] // "PLSN"
export const SNAPSHOT_VERSION = 1

export interface SnapshotHeader {
  readonly meta: SnapshotMeta
  readonly dataLength: number
  readonly dataCrc: number
  /** Offset of the data in the file. */
  readonly dataOffset: number
}

export function encodeSnapshotFile(s: Snapshot): Uint8Array {
  const w = new ByteWriter(64 + s.data.length)
  for (const b of MAGIC) w.u8(b)
  w.u8(SNAPSHOT_VERSION)
  const lenAt = w.reserve32()
  writeSnapshotMeta(w, s.meta)
  w.uvarint(s.data.length)
  w.u32(crc32c(s.data))
  w.patch32(lenAt, w.pos - lenAt - 4)
  w.u32(crc32c(w.finish()))
  w.raw(s.data)
  return w.finish()
}

/** Parse and verify the header; throws DecodeError. Does not look at the data bytes. */
export function decodeSnapshotHeader(
  bytes: Uint8Array,
  limits: DecodeLimits = DEFAULT_LIMITS,
): SnapshotHeader {
  const r = new ByteReader(bytes)
  for (const b of MAGIC) if (r.u8('magic') !== b) r.fail('not a snapshot file (bad magic)')
  const version = r.u8('version')
  if (version !== SNAPSHOT_VERSION) r.fail(`unsupported snapshot version ${version}`)
  const headerLen = r.u32('header length')
  if (headerLen > r.remaining - 4) r.fail(`header length ${headerLen} beyond file`)
  const headerEnd = r.pos + headerLen
  const crc = new DataView(bytes.buffer, bytes.byteOffset + headerEnd, 4).getUint32(0, true)
  if (crc32c(bytes, 0, 0, headerEnd) !== crc) r.fail('snapshot header checksum mismatch')
  const hr = new ByteReader(bytes, r.pos, headerEnd)
  const meta = readSnapshotMeta(hr, limits)
  const dataLength = hr.bounded(limits.maxDataBytes, 'snapshot data length')
  const dataCrc = hr.u32('data crc')
  hr.expectEnd('snapshot header')
  return { meta, dataLength, dataCrc, dataOffset: headerEnd + 4 }
}

export function decodeSnapshotFile(bytes: Uint8Array, limits: DecodeLimits = DEFAULT_LIMITS): Snapshot {
  const h = decodeSnapshotHeader(bytes, limits)
  if (bytes.length - h.dataOffset !== h.dataLength) {
    throw new DecodeError(
      `snapshot data is ${bytes.length - h.dataOffset} bytes, header says ${h.dataLength}`,
      h.dataOffset,
    )
  }
  if (crc32c(bytes, 0, h.dataOffset, bytes.length) !== h.dataCrc) {
    throw new DecodeError('snapshot data checksum mismatch', h.dataOffset)
  }
  return { meta: h.meta, data: bytes.subarray(h.dataOffset) }
}
