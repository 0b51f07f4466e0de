// The guest program: a key-value store whose hash table and records live in guest pages. Answers
// depend only on the requests; clock readings and allocation choices (GuestEnv) only change
// metadata and placement — the realistic nondeterminism that makes replicas' pages differ.

import { KERNEL, MAX_RECORD, REC, SB, STATS } from './guest-layout.js'
import type { GuestMemory } from './guest-memory.js'
import { type DecodedRequest, encodeKvResponse, KvOp, KvStatus } from './kv-frame.js'
import { allocate, release, sizeClassFor } from './slab-allocator.js'

/** What the guest reads from its (virtual) hardware. */
export interface GuestEnv {
  /** The guest's clock in ms (jittered per replica). */
  clockMs(): number
  /** Whether this allocation takes the second free-list entry. */
  swapAllocation(): boolean
}

const EMPTY = new Uint8Array(0)
const enc = new TextEncoder()
const dec = new TextDecoder()

function fnv1a(key: Uint8Array): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    h ^= key[i]
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

function bump(mem: GuestMemory, addr: number): void {
  mem.setU32(addr, mem.u32(addr) + 1)
}

interface Found {
  /** Address of the link that points at the record (bucket slot or previous record's next). */
  readonly link: number
  readonly rec: number
}

function find(mem: GuestMemory, key: Uint8Array, hash: number): Found | null {
  const buckets = mem.u32(SB.bucketsAddr)
  let link = buckets + (hash & (mem.u32(SB.bucketCount) - 1)) * 4
  let rec = mem.u32(link)
  while (rec !== 0) {
    if (mem.u32(rec + REC.keyHash) === hash && mem.u16(rec + REC.keyLen) === key.length) {
      const stored = mem.slice(rec + REC.header, key.length)
      let same = true
      for (let i = 0; i < key.length && same; i++) same = stored[i] === key[i]
      if (same) return { link, rec }
    }
    link = rec + REC.next
    rec = mem.u32(link)
  }
  return null
}

function recordValue(mem: GuestMemory, rec: number): Uint8Array {
  const keyLen = mem.u16(rec + REC.keyLen)
  return mem.slice(rec + REC.header + keyLen, mem.u32(rec + REC.valLen)).slice()
}

function seconds(env: GuestEnv): number {
  // WHY coarse seconds (like redis's LRU clock): replicas disagree only near a second boundary,
  // so record pages mostly stay identical.
  return Math.floor(env.clockMs() / 1000)
}

/** Stores key=value; returns the status. */
function store(mem: GuestMemory, key: Uint8Array, value: Uint8Array, env: GuestEnv): KvStatus {
  const need = REC.header + key.length + value.length
  if (need > MAX_RECORD) return KvStatus.TooLarge
  const cls = sizeClassFor(need)
  const hash = fnv1a(key)
  const found = find(mem, key, hash)
  const now = seconds(env)
  if (found !== null && mem.u8(found.rec + REC.sizeClass) === cls) {
    mem.write(found.rec + REC.header + key.length, value)
    mem.setU32(found.rec + REC.valLen, value.length)
    bump(mem, found.rec + REC.version)
    mem.setU32(found.rec + REC.modifiedSec, now)
    return KvStatus.Ok
  }
  const rec = allocate(mem, cls, env.swapAllocation)
  if (rec === 0) return KvStatus.OutOfMemory
  const version = found === null ? 1 : mem.u32(found.rec + REC.version) + 1
  mem.setU32(rec + REC.keyHash, hash)
  mem.setU32(rec + REC.valLen, value.length)
  mem.setU32(rec + REC.version, version)
  mem.setU32(rec + REC.modifiedSec, now)
  mem.setU32(rec + REC.accessSec, now)
  mem.setU16(rec + REC.keyLen, key.length)
  mem.setU8(rec + REC.sizeClass, cls)
  mem.setU8(rec + REC.flags, 0)
  mem.write(rec + REC.header, key)
  mem.write(rec + REC.header + key.length, value)
  if (found === null) {
    const buckets = mem.u32(SB.bucketsAddr)
    const slot = buckets + (hash & (mem.u32(SB.bucketCount) - 1)) * 4
    mem.setU32(rec + REC.next, mem.u32(slot))
    mem.setU32(slot, rec)
    bump(mem, SB.recordCount)
  } else {
    // Grew or shrank out of its size class: relink the new record in place of the old one.
    mem.setU32(rec + REC.next, mem.u32(found.rec + REC.next))
    mem.setU32(found.link, rec)
    release(mem, mem.u8(found.rec + REC.sizeClass), found.rec)
  }
  return KvStatus.Ok
}

function parseInteger(bytes: Uint8Array): number | null {
  const s = dec.decode(bytes)
  if (!/^-?\d{1,16}$/.test(s)) return null
  const n = Number(s)
  return Number.isSafeInteger(n) ? n : null
}

function execute(
  mem: GuestMemory,
  op: KvOp,
  key: Uint8Array,
  value: Uint8Array,
  env: GuestEnv,
): [KvStatus, Uint8Array] {
  switch (op) {
    case KvOp.Get: {
      bump(mem, STATS.gets)
      const found = find(mem, key, fnv1a(key))
      if (found === null) {
        bump(mem, STATS.misses)
        return [KvStatus.NotFound, EMPTY]
      }
      bump(mem, STATS.hits)
      mem.setU32(found.rec + REC.accessSec, seconds(env))
      return [KvStatus.Ok, recordValue(mem, found.rec)]
    }
    case KvOp.Set:
      bump(mem, STATS.sets)
      return [store(mem, key, value, env), EMPTY]
    case KvOp.Del: {
      bump(mem, STATS.dels)
      const found = find(mem, key, fnv1a(key))
      if (found === null) return [KvStatus.NotFound, EMPTY]
      mem.setU32(found.link, mem.u32(found.rec + REC.next))
      release(mem, mem.u8(found.rec + REC.sizeClass), found.rec)
      mem.setU32(SB.recordCount, mem.u32(SB.recordCount) - 1)
      return [KvStatus.Ok, EMPTY]
    }
    case KvOp.Incr: {
      bump(mem, STATS.incrs)
      const delta = value.length === 0 ? 1 : parseInteger(value)
      const found = find(mem, key, fnv1a(key))
      const current = found === null ? 0 : parseInteger(recordValue(mem, found.rec))
      if (delta === null || current === null) return [KvStatus.NotANumber, EMPTY]
      const next = current + delta
      if (!Number.isSafeInteger(next)) return [KvStatus.NotANumber, EMPTY]
      const text = enc.encode(String(next))
      const status = store(mem, key, text, env)
      return [status, status === KvStatus.Ok ? text : EMPTY]
    }
    default:
      return [KvStatus.BadRequest, EMPTY]
  }
}

/** Runs one decoded frame; returns the response frame, or null when the frame is dropped. */
export function serveFrame(mem: GuestMemory, decoded: DecodedRequest, env: GuestEnv): Uint8Array | null {
  if (decoded.kind === 'foreign') {
    bump(mem, STATS.dropped)
    return null
  }
  mem.setF64(KERNEL.lastRequestMs, env.clockMs())
  if (decoded.kind === 'bad') {
    bump(mem, STATS.errors)
    return encodeKvResponse({
      op: decoded.op,
      clientId: decoded.clientId,
      requestId: decoded.requestId,
      status: KvStatus.BadRequest,
      value: EMPTY,
    })
  }
  const r = decoded.request
  const [status, value] = execute(mem, r.op, r.key, r.value, env)
  if (status !== KvStatus.Ok && status !== KvStatus.NotFound) bump(mem, STATS.errors)
  return encodeKvResponse({ op: r.op, clientId: r.clientId, requestId: r.requestId, status, value })
}

/** The guest's periodic timer interrupt: bumps jiffies and stamps the (jittery) clock. */
export function timerTick(mem: GuestMemory, env: GuestEnv): void {
  mem.setF64(KERNEL.ticks, mem.f64(KERNEL.ticks) + 1)
  mem.setF64(KERNEL.lastTickMs, env.clockMs())
}

/** Every key/value pair, walking the guest's hash table (for digests and debugging). */
export function* entries(mem: GuestMemory): Generator<[Uint8Array, Uint8Array]> {
  const buckets = mem.u32(SB.bucketsAddr)
  const count = mem.u32(SB.bucketCount)
  for (let b = 0; b < count; b++) {
    for (let rec = mem.u32(buckets + b * 4); rec !== 0; rec = mem.u32(rec + REC.next)) {
      const keyLen = mem.u16(rec + REC.keyLen)
      yield [mem.slice(rec + REC.header, keyLen).slice(), recordValue(mem, rec)]
    }
  }
}
