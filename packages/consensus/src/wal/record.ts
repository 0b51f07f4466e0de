import { crc32c } from '../codec/crc32c.js'
import { DecodeError } from '../codec/errors.js'
import { DEFAULT_LIMITS, type DecodeLimits } from '../codec/limits.js'
import { ByteReader } from '../codec/reader.js'
import { readEntry, readHardState, writeEntry, writeHardState } from '../codec/structs.js'
import type { ByteWriter } from '../codec/writer.js'
import type { Entry, HardState } from '../core/types.js'

// One WAL record on disk:
//   u32 len (bytes of type+payload) | u32 crc32c(type+payload) | u8 type | payload
// Length first so a scan can skip; CRC over the body so a torn or flipped record is detected.

export const FRAME_HEADER = 8

export enum RecordType {
  /** A log entry; a later entry with index i replaces entries >= i (conflict truncation). */
  Entry = 1,
  /** Latest hard state wins; also written first in every segment so dropping old ones is safe. */
  HardState = 2,
  /** A snapshot from the leader was installed at (index, term): every earlier entry is void. */
  SnapshotInstall = 3,
}

export type WalRecord =
  | { readonly type: RecordType.Entry; readonly entry: Entry }
  | { readonly type: RecordType.HardState; readonly hardState: HardState }
  | { readonly type: RecordType.SnapshotInstall; readonly index: number; readonly term: number }

export function writeRecord(w: ByteWriter, rec: WalRecord): void {
  const start = w.reserve32()
  w.reserve32()
  w.u8(rec.type)
  switch (rec.type) {
    case RecordType.Entry:
      writeEntry(w, rec.entry)
      break
    case RecordType.HardState:
      writeHardState(w, rec.hardState)
      break
    case RecordType.SnapshotInstall:
      w.uvarint(rec.index)
      w.uvarint(rec.term)
      break
  }
  const bodyStart = start + FRAME_HEADER
  w.patch32(start, w.pos - bodyStart)
  w.patch32(start + 4, crc32c(w.finish(), 0, bodyStart, w.pos))
}

/** Decode a record body (type + payload) whose CRC already matched. Throws DecodeError. */
export function decodeRecordBody(body: Uint8Array, limits: DecodeLimits = DEFAULT_LIMITS): WalRecord {
  const r = new ByteReader(body)
  const type = r.u8('record type')
  let rec: WalRecord
  switch (type) {
    case RecordType.Entry:
      rec = { type, entry: readEntry(r, limits) }
      break
    case RecordType.HardState:
      rec = { type, hardState: readHardState(r) }
      break
    case RecordType.SnapshotInstall:
      rec = { type, index: r.uvarint('index'), term: r.uvarint('term') }
      break
    default:
      throw new DecodeError(`unknown WAL record type ${type}`, 0)
  }
  r.expectEnd('WAL record')
  return rec
}

export type FrameResult =
  | { readonly kind: 'ok'; readonly body: Uint8Array; readonly next: number }
  | { readonly kind: 'end' }
  /** The bytes stop inside this record: a write that never completed. */
  | { readonly kind: 'torn'; readonly reason: string }
  /** Bad length or checksum. `next` = where the following record would start, if plausible. */
  | { readonly kind: 'corrupt'; readonly reason: string; readonly next?: number }

/** Parse the frame at `pos`. Never throws and never reads past `buf`. */
export function readFrame(buf: Uint8Array, pos: number, maxRecordBytes: number): FrameResult {
  if (pos === buf.length) return { kind: 'end' }
  if (buf.length - pos < FRAME_HEADER) return { kind: 'torn', reason: 'truncated record header' }
  const view = new DataView(buf.buffer, buf.byteOffset + pos, FRAME_HEADER)
  const len = view.getUint32(0, true)
  const crc = view.getUint32(4, true)
  if (len === 0 || len > maxRecordBytes) return { kind: 'corrupt', reason: `bad record length ${len}` }
  const bodyStart = pos + FRAME_HEADER
  if (buf.length - bodyStart < len) return { kind: 'torn', reason: 'truncated record body' }
  const next = bodyStart + len
  if (crc32c(buf, 0, bodyStart, next) !== crc)
    return { kind: 'corrupt', reason: 'record checksum mismatch', next }
  return { kind: 'ok', body: buf.subarray(bodyStart, next), next }
}
