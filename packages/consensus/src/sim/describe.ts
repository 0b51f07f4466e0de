// Compact, stable text forms of entries, messages and Readies: the language of the scenario
// traces in testdata/ (a regression shows up as a readable diff).
import { decodeConfChange, describeMembership } from '../core/membership.js'
import type { Ready } from '../core/raft.js'
import {
  ConfChangeType,
  type Entry,
  EntryType,
  MemberRole,
  type Message,
  MessageType,
  type NodeId,
  type Snapshot,
} from '../core/types.js'

const decoder = new TextDecoder('utf-8', { fatal: true })

export function describeData(data: Uint8Array): string {
  try {
    const s = decoder.decode(data)
    if (/^[\x20-\x7e]*$/.test(s)) return JSON.stringify(s)
  } catch {
    // not text: fall through to hex
  }
  return `0x${Buffer.from(data).toString('hex')}`
}

export function describeEntry(e: Entry): string {
  const head = `${e.term}/${e.index} ${EntryType[e.type] ?? e.type}`
  if (e.type === EntryType.Empty) return head
  if (e.type === EntryType.ConfChange) {
    const cc = decodeConfChange(e.data)
    if (!cc) return `${head} <invalid>`
    const role = MemberRole[cc.role].toLowerCase()
    return cc.type === ConfChangeType.AddMember ? `${head} add ${cc.id} ${role}` : `${head} remove ${cc.id}`
  }
  return `${head} ${describeData(e.data)}`
}

export function describeEntries(es: readonly Entry[]): string {
  return `[${es.map(describeEntry).join(', ')}]`
}

export function describeSnapshot(s: Snapshot): string {
  return `${s.meta.term}/${s.meta.index} members=(${describeMembership(s.meta.membership)}) data=${describeData(s.data)}`
}

export function describeMessage(m: Message): string {
  const head = `${m.from}->${m.to} ${MessageType[m.type]} term=${m.term}`
  switch (m.type) {
    case MessageType.Append:
    case MessageType.CatchUp: {
      let s = `${head} log=${m.logTerm}/${m.logIndex} commit=${m.commit}`
      if (m.snapshot) s += ` snapshot=${describeSnapshot(m.snapshot)}`
      if (m.entries.length > 0) s += ` entries=${describeEntries(m.entries)}`
      return s
    }
    case MessageType.AppendResp:
      return m.reject
        ? `${head} reject index=${m.logIndex} hint=${m.logTerm}/${m.rejectHint}`
        : `${head} index=${m.logIndex}`
    case MessageType.Vote:
    case MessageType.PreVote:
      return `${head} last=${m.logTerm}/${m.logIndex}${m.transfer ? ' transfer' : ''}`
    case MessageType.VoteResp:
    case MessageType.PreVoteResp:
      return m.reject ? `${head} reject` : head
    case MessageType.Heartbeat:
      return `${head} commit=${m.commit}`
    case MessageType.Snapshot:
      return m.snapshot ? `${head} snapshot=${describeSnapshot(m.snapshot)}` : `${head} <no snapshot>`
    default:
      return head
  }
}

/** One line per fact a Ready carries, prefixed with the node id. */
export function describeReady(id: NodeId, rd: Ready): string[] {
  const out: string[] = []
  if (rd.softState) out.push(`${id}: role=${rd.softState.role} leader=${rd.softState.leader}`)
  if (rd.hardState) {
    const h = rd.hardState
    out.push(`${id}: hard term=${h.term} vote=${h.vote} commit=${h.commit}`)
  }
  if (rd.snapshot) out.push(`${id}: install snapshot ${describeSnapshot(rd.snapshot)}`)
  if (rd.entries.length > 0) out.push(`${id}: persist ${describeEntries(rd.entries)}`)
  if (rd.committed.length > 0) out.push(`${id}: apply ${describeEntries(rd.committed)}`)
  for (const m of rd.messages) out.push(describeMessage(m))
  return out
}
