import {
  type Entry,
  EntryType,
  type HardState,
  type Member,
  MemberRole,
  type Membership,
  type SnapshotMeta,
} from '../core/types.js'
import type { DecodeLimits } from './limits.js'
import type { ByteReader } from './reader.js'
import type { ByteWriter } from './writer.js'

// Field-level encoders shared by the wire format, WAL records and snapshot headers. These write
// no version byte; the top-level formats (message.ts, wal/record.ts, snapshot header) do.

const MAX_ENTRY_TYPE = EntryType.Unprotect
const MAX_ROLE = MemberRole.Learner

export function writeEntry(w: ByteWriter, e: Entry): void {
  w.uvarint(e.term)
  w.uvarint(e.index)
  w.u8(e.type)
  w.bytes(e.data)
}

export function readEntry(r: ByteReader, limits: DecodeLimits): Entry {
  const term = r.uvarint('entry term')
  const index = r.uvarint('entry index')
  const type = r.u8('entry type')
  if (type > MAX_ENTRY_TYPE) r.fail(`unknown entry type ${type}`)
  const data = r.bytes(limits.maxDataBytes, 'entry data')
  return { term, index, type, data }
}

export function writeHardState(w: ByteWriter, hs: HardState): void {
  w.uvarint(hs.term)
  w.uvarint(hs.vote)
  w.uvarint(hs.commit)
}

export function readHardState(r: ByteReader): HardState {
  return { term: r.uvarint('term'), vote: r.uvarint('vote'), commit: r.uvarint('commit') }
}

export function writeMembership(w: ByteWriter, m: Membership): void {
  w.uvarint(m.members.length)
  for (const x of m.members) {
    w.uvarint(x.id)
    w.u8(x.role)
  }
}

export function readMembership(r: ByteReader, limits: DecodeLimits): Membership {
  // Each member takes at least 2 bytes: bound the count by that before allocating.
  const n = r.bounded(Math.min(limits.maxMembers, r.remaining >> 1), 'member count')
  const members: Member[] = []
  for (let i = 0; i < n; i++) {
    const id = r.uvarint('member id')
    const role = r.u8('member role')
    if (role > MAX_ROLE) r.fail(`unknown member role ${role}`)
    members.push({ id, role })
  }
  return { members }
}

export function writeSnapshotMeta(w: ByteWriter, m: SnapshotMeta): void {
  w.uvarint(m.index)
  w.uvarint(m.term)
  writeMembership(w, m.membership)
}

export function readSnapshotMeta(r: ByteReader, limits: DecodeLimits): SnapshotMeta {
  const index = r.uvarint('snapshot index')
  const term = r.uvarint('snapshot term')
  const membership = readMembership(r, limits)
  return { index, term, membership }
}
