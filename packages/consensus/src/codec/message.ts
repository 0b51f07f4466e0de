import { type Entry, type Message, MessageType } from '../core/types.js'
import { DEFAULT_LIMITS, type DecodeLimits } from './limits.js'
import { ByteReader } from './reader.js'
import { readEntry, readSnapshotMeta, writeEntry, writeSnapshotMeta } from './structs.js'
import { ByteWriter } from './writer.js'

// Wire format of one Message (version 1):
//   u8 version | u8 type | u8 flags(bit0 reject, bit1 transfer, bit2 snapshot)
//   varint from, to, term, logIndex, logTerm, commit, rejectHint
//   varint nEntries, then nEntries × (varint term, varint index, u8 type, varint len, data)
//   [if snapshot: varint index, varint term, membership, varint len, data]
// A heartbeat is ~12 bytes; a 4 KiB append carries ~10 bytes of overhead per entry.

export const MESSAGE_VERSION = 1
const MAX_MESSAGE_TYPE = MessageType.CatchUp
const F_REJECT = 1
const F_TRANSFER = 2
const F_SNAPSHOT = 4

export function encodeMessage(m: Message, w = new ByteWriter(64 + entriesSize(m.entries))): Uint8Array {
  const start = w.pos
  w.u8(MESSAGE_VERSION)
  w.u8(m.type)
  w.u8((m.reject ? F_REJECT : 0) | (m.transfer ? F_TRANSFER : 0) | (m.snapshot ? F_SNAPSHOT : 0))
  w.uvarint(m.from)
  w.uvarint(m.to)
  w.uvarint(m.term)
  w.uvarint(m.logIndex)
  w.uvarint(m.logTerm)
  w.uvarint(m.commit)
  w.uvarint(m.rejectHint)
  w.uvarint(m.entries.length)
  for (const e of m.entries) writeEntry(w, e)
  if (m.snapshot) {
    writeSnapshotMeta(w, m.snapshot.meta)
    w.bytes(m.snapshot.data)
  }
  return w.finish().subarray(start)
}

function entriesSize(es: readonly Entry[]): number {
  let n = 0
  for (const e of es) n += e.data.length + 24
  return n
}

/** Decode one message occupying exactly `bytes`. Throws DecodeError on anything malformed. */
export function decodeMessage(bytes: Uint8Array, limits: DecodeLimits = DEFAULT_LIMITS): Message {
  const r = new ByteReader(bytes)
  const version = r.u8('version')
  if (version !== MESSAGE_VERSION) r.fail(`unsupported message version ${version}`)
  const type = r.u8('type')
  if (type > MAX_MESSAGE_TYPE) r.fail(`unknown message type ${type}`)
  const flags = r.u8('flags')
  if (flags & ~(F_REJECT | F_TRANSFER | F_SNAPSHOT)) r.fail(`unknown flags ${flags}`)
  const from = r.uvarint('from')
  const to = r.uvarint('to')
  const term = r.uvarint('term')
  const logIndex = r.uvarint('logIndex')
  const logTerm = r.uvarint('logTerm')
  const commit = r.uvarint('commit')
  const rejectHint = r.uvarint('rejectHint')
  // An entry takes at least 4 bytes on the wire: a count above remaining/4 is a lie.
  const n = r.bounded(Math.min(limits.maxEntries, r.remaining >> 2), 'entry count')
  const entries: Entry[] = new Array(n)
  for (let i = 0; i < n; i++) entries[i] = readEntry(r, limits)
  let snapshot: Message['snapshot']
  if (flags & F_SNAPSHOT) {
    const meta = readSnapshotMeta(r, limits)
    snapshot = { meta, data: r.bytes(limits.maxDataBytes, 'snapshot data') }
  }
  r.expectEnd('message')
  const m: Message = {
    type,
    from,
    to,
    term,
    logIndex,
    logTerm,
    commit,
    entries,
    reject: (flags & F_REJECT) !== 0,
    rejectHint,
    transfer: (flags & F_TRANSFER) !== 0,
  }
  return snapshot ? { ...m, snapshot } : m
}
