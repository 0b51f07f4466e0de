// Membership math: who votes, who may lead, how a ConfChange transforms a Membership, and the
// tiny fixed encoding of a ConfChange inside an Entry (the core must decode it itself: it is pure).
import {
  type ConfChange,
  ConfChangeType,
  type Member,
  MemberRole,
  type Membership,
  type NodeId,
} from './types.js'

export function roleOf(m: Membership, id: NodeId): MemberRole | undefined {
  for (const x of m.members) if (x.id === id) return x.role
  return undefined
}

/** Voters for elections and commit: Voter and Witness members (a witness votes, it just never leads). */
export function voterIds(m: Membership): NodeId[] {
  return m.members.filter((x) => x.role !== MemberRole.Learner).map((x) => x.id)
}

export function memberIds(m: Membership): NodeId[] {
  return m.members.map((x) => x.id)
}

export function quorumSize(voters: number): number {
  return Math.floor(voters / 2) + 1
}

/** Pure transformation; throws on a change that makes no sense (caller validates proposals). */
export function applyConfChange(m: Membership, cc: ConfChange): Membership {
  const rest = m.members.filter((x) => x.id !== cc.id)
  if (cc.type === ConfChangeType.AddMember) {
    return { members: [...rest, { id: cc.id, role: cc.role }].sort((a, b) => a.id - b.id) }
  }
  return { members: rest }
}

/**
 * ConfChange entry data: 1 byte type, 1 byte role, 4 bytes id (big endian), then optionally the
 * membership that results from it (u16 count, then per member u32 id + u8 role). Carrying the
 * result makes every ConfChange entry self-contained: a replica that joins with an empty
 * membership and replays the log from index 1 gets the exact membership at each point instead
 * of applying the changes to a base it does not know.
 */
export function encodeConfChange(cc: ConfChange, result?: Membership): Uint8Array {
  const n = result?.members.length ?? 0
  const b = new Uint8Array(6 + (result ? 2 + 5 * n : 0))
  const v = new DataView(b.buffer)
  v.setUint8(0, cc.type)
  v.setUint8(1, cc.role)
  v.setUint32(2, cc.id)
  if (result) {
    v.setUint16(6, n)
    result.members.forEach((m, i) => {
      v.setUint32(8 + 5 * i, m.id)
      v.setUint8(12 + 5 * i, m.role)
    })
  }
  return b
}

/** Returns undefined for bytes that are not a valid ConfChange (never throws on peer data). */
export function decodeConfChange(data: Uint8Array): ConfChange | undefined {
  if (data.length < 6) return undefined
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength)
  const type = v.getUint8(0)
  const role = v.getUint8(1)
  const id = v.getUint32(2)
  if (type > ConfChangeType.RemoveMember || role > MemberRole.Learner || id === 0) return undefined
  return { type, role, id }
}

/** The membership recorded in a ConfChange entry, if it carries one. */
export function decodeConfChangeResult(data: Uint8Array): Membership | undefined {
  if (data.length < 8) return undefined
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength)
  const n = v.getUint16(6)
  if (data.length !== 8 + 5 * n) return undefined
  const members: Member[] = []
  for (let i = 0; i < n; i++) {
    const role = v.getUint8(12 + 5 * i)
    if (role > MemberRole.Learner) return undefined
    members.push({ id: v.getUint32(8 + 5 * i), role })
  }
  return { members }
}

export function describeMembership(m: Membership): string {
  const name = ['voter', 'witness', 'learner']
  return m.members.map((x) => `${x.id}:${name[x.role]}`).join(' ')
}
