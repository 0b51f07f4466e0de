// Holds an inbound TCP segment whose ACK covers bytes this guest has not sent yet, until the
// guest's own outbound frames show it has sent them (or a bounded time passed).
//
// WHY: a backup runs behind its primary, but is fed the same inbound frames. A client segment
// acknowledges reply bytes the PRIMARY already sent; if the backup's guest has not sent them yet
// (ACK > its SND.NXT), Linux drops the whole segment, payload included (tcp_ack():
// "ack of unsent data"), and the client never retransmits it (the primary acknowledged it): the
// backup's stream stalls and its memory diverges (docs/divergence.md, cause 1).
//
// One concept: per TCP flow (keyed on the guest's side), the highest seq+len the guest sent
// (SYN/FIN count one, modulo 2^32), and a FIFO of inbound frames. `admit` resolves in call order;
// a held frame blocks every later frame (the guest must see the log's order). Frames that are not
// TCP (or not parseable) are never held and never throw. Flows are forgotten on RST, once both
// sides sent FIN, after an idle time, and beyond a flow cap. A flow stops being gated after a
// hold timed out, or when the peer acknowledges another ISN than the guest's own.

export interface TcpAckGateOptions {
  /** Longest hold of one frame; then it is delivered anyway (counted). Default 2000 ms. */
  readonly timeoutMs?: number
  /** Flows without a frame for this long are forgotten. Default 300 000 ms. */
  readonly idleMs?: number
  /** At most this many flows are tracked (the least recently used is forgotten). Default 4096. */
  readonly maxFlows?: number
  /** Whether the guest can catch up now (running); when false, nothing is held. Default: always. */
  readonly canHold?: () => boolean
  /** Clock (tests). Default performance.now. */
  readonly now?: () => number
}

export interface TcpAckGateCounters {
  /** Frames that had to wait. */
  readonly held: number
  /** Held frames released because the guest's outputs caught up. */
  readonly releasedByCatchUp: number
  /** Held frames delivered anyway after `timeoutMs`. */
  readonly releasedByTimeout: number
  /** Held frames released by `releaseAll` (pause, sync, close). */
  readonly releasedByFlush: number
  /** Longest hold so far, ms. */
  readonly maxHoldMs: number
  /** Flows currently tracked. */
  readonly flows: number
}

/** The TCP fields the gate needs, from an Ethernet frame (IPv4 or IPv6, optional 802.1Q tag). */
export interface TcpSegmentInfo {
  /** Source address:port and destination address:port, as comparable strings. */
  readonly src: string
  readonly dst: string
  readonly seq: number
  readonly ack: number
  readonly flags: number
  /** Sequence space used: payload bytes, plus one for SYN and one for FIN. */
  readonly seqLen: number
}

export const TCP_FIN = 0x01
export const TCP_SYN = 0x02
export const TCP_RST = 0x04
export const TCP_ACK = 0x10

/** a > b in 32-bit sequence space (RFC 1982 style). */
export function seqAfter(a: number, b: number): boolean {
  return ((a - b) | 0) > 0
}

function hex(bytes: Uint8Array, start: number, len: number): string {
  let s = ''
  for (let i = start; i < start + len; i++) s += (bytes[i]! < 16 ? '0' : '') + bytes[i]!.toString(16)
  return s
}

/** Parses the TCP header of an Ethernet frame; undefined for anything else or anything malformed. */
export function parseTcpSegment(frame: Uint8Array): TcpSegmentInfo | undefined {
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength)
  const n = frame.byteLength
  if (n < 14) return undefined
  let off = 12
  let type = v.getUint16(off)
  if (type === 0x8100 || type === 0x88a8) {
    if (n < 18) return undefined
    off += 4
    type = v.getUint16(off)
  }
  off += 2
  let ipEnd: number
  let t: number
  let srcAddr: string
  let dstAddr: string
  if (type === 0x0800) {
    if (n < off + 20 || frame[off]! >> 4 !== 4 || frame[off + 9] !== 6) return undefined
    const ihl = (frame[off]! & 0x0f) * 4
    const total = v.getUint16(off + 2)
    if (v.getUint16(off + 6) & 0x1fff) return undefined // a non-first fragment: no TCP header
    if (ihl < 20 || total < ihl) return undefined
    ipEnd = Math.min(n, off + total)
    t = off + ihl
    srcAddr = hex(frame, off + 12, 4)
    dstAddr = hex(frame, off + 16, 4)
  } else if (type === 0x86dd) {
    // Extension headers are not followed (TCP directly after the fixed header only).
    if (n < off + 40 || frame[off]! >> 4 !== 6 || frame[off + 6] !== 6) return undefined
    ipEnd = Math.min(n, off + 40 + v.getUint16(off + 4))
    t = off + 40
    srcAddr = hex(frame, off + 8, 16)
    dstAddr = hex(frame, off + 24, 16)
  } else {
    return undefined
  }
  if (ipEnd < t + 20) return undefined
  const doff = (frame[t + 12]! >> 4) * 4
  if (doff < 20 || t + doff > ipEnd) return undefined
  const flags = frame[t + 13]!
  const payload = ipEnd - t - doff
  return {
    src: `${srcAddr}:${v.getUint16(t)}`,
    dst: `${dstAddr}:${v.getUint16(t + 2)}`,
    seq: v.getUint32(t + 4),
    ack: v.getUint32(t + 8),
    flags,
    seqLen: payload + (flags & TCP_SYN ? 1 : 0) + (flags & TCP_FIN ? 1 : 0),
  }
}

interface Flow {
  /** Next sequence number after everything the guest sent (SND.NXT as seen on the wire). */
  sndNxt: number
  lastSeen: number
  finOut: boolean
  finIn: boolean
  /** The guest sent only its SYN / SYN-ACK so far (its own ISN). */
  handshakeOnly: boolean
  /** Never hold this flow's frames again (a hold timed out, or the peer uses another ISN). */
  ungated: boolean
}

interface Waiting {
  readonly frame: Uint8Array
  readonly resolve: () => void
  /** When the frame started to wait (undefined: not evaluated as held yet). */
  since: number | undefined
}

export class TcpAckGate {
  readonly #timeoutMs: number
  readonly #idleMs: number
  readonly #maxFlows: number
  readonly #canHold: () => boolean
  readonly #now: () => number
  /** Insertion order = least recently used first (a touch re-inserts). */
  readonly #flows = new Map<string, Flow>()
  readonly #queue: Waiting[] = []
  #timer: ReturnType<typeof setTimeout> | undefined
  #lastSweep = 0
  #held = 0
  #byCatchUp = 0
  #byTimeout = 0
  #byFlush = 0
  #maxHoldMs = 0

  constructor(options: TcpAckGateOptions = {}) {
    this.#timeoutMs = options.timeoutMs ?? 2000
    this.#idleMs = options.idleMs ?? 300_000
    this.#maxFlows = options.maxFlows ?? 4096
    this.#canHold = options.canHold ?? (() => true)
    this.#now = options.now ?? (() => performance.now())
  }

  get counters(): TcpAckGateCounters {
    return {
      held: this.#held,
      releasedByCatchUp: this.#byCatchUp,
      releasedByTimeout: this.#byTimeout,
      releasedByFlush: this.#byFlush,
      maxHoldMs: this.#maxHoldMs,
      flows: this.#flows.size,
    }
  }

  /** Frames waiting (the first one is held, the others wait behind it). */
  get waiting(): number {
    return this.#queue.length
  }

  /** A frame the guest sent: advances its flow's SND.NXT. Never throws. */
  observeOutbound(frame: Uint8Array): void {
    const s = parseTcpSegment(frame)
    if (!s) return
    const key = `${s.src}>${s.dst}`
    const now = this.#now()
    if (s.flags & TCP_RST) {
      this.#flows.delete(key)
    } else {
      const end = (s.seq + s.seqLen) >>> 0
      const flow = this.#flows.get(key)
      if (flow) {
        this.#flows.delete(key)
        if (seqAfter(end, flow.sndNxt)) flow.sndNxt = end
        flow.lastSeen = now
        if (s.flags & TCP_FIN) flow.finOut = true
        if (!(s.flags & TCP_SYN)) flow.handshakeOnly = false
        this.#flows.set(key, flow)
        if (flow.finOut && flow.finIn) this.#flows.delete(key)
      } else {
        // A flow first seen mid-stream (after a reset) starts from this output. If that was a
        // retransmission below the real SND.NXT, a valid ACK may be held once: the timeout then
        // stops gating the flow (see #pump).
        this.#flows.set(key, {
          sndNxt: end,
          lastSeen: now,
          finOut: (s.flags & TCP_FIN) !== 0,
          finIn: false,
          handshakeOnly: (s.flags & TCP_SYN) !== 0,
          ungated: false,
        })
      }
      this.#bound(now)
    }
    if (this.#queue.length > 0) this.#pump()
  }

  /**
   * Resolves when `frame` (inbound, toward the guest) may be delivered. Calls resolve in call
   * order, so delivering each frame right after its admit resolves keeps the callers' order.
   */
  admit(frame: Uint8Array): Promise<void> {
    if (this.#queue.length === 0 && !this.#ahead(frame)) {
      this.#noteInbound(frame)
      return Promise.resolve()
    }
    return new Promise<void>((resolve) => {
      this.#queue.push({ frame, resolve, since: undefined })
      this.#pump()
    })
  }

  /** Releases every waiting frame now (the VM pauses, its state is replaced, or it closes). */
  releaseAll(): void {
    this.#clearTimer()
    const now = this.#now()
    for (const w of this.#queue.splice(0)) {
      if (w.since !== undefined) {
        this.#byFlush++
        this.#noteHold(now - w.since)
      }
      this.#noteInbound(w.frame)
      w.resolve()
    }
  }

  /**
   * The guest's state was replaced (a sync): forgets every flow and releases waiting frames.
   * Tracking restarts from the guest's next outputs (an unknown flow is never held), or, with
   * `from`, continues from a copy of the flows of the gate watching the guest whose state this
   * guest now has (for setups without output commit, where a client may already acknowledge bytes
   * the source guest sent after the cut).
   */
  reset(from?: TcpAckGate): void {
    this.#flows.clear()
    if (from) for (const [key, flow] of from.#flows) this.#flows.set(key, { ...flow })
    this.releaseAll()
  }

  /** Whether an inbound frame acknowledges more than the guest has sent on its flow. */
  #ahead(frame: Uint8Array): boolean {
    const s = parseTcpSegment(frame)
    if (!s || !(s.flags & TCP_ACK) || s.flags & TCP_RST) return false
    const flow = this.#flows.get(`${s.dst}>${s.src}`)
    if (!flow || flow.ungated || !seqAfter(s.ack, flow.sndNxt)) return false
    if (flow.handshakeOnly) {
      // The peer acknowledges another ISN than this guest's (a backup's SYN-ACK carries its own
      // clock-derived ISN, the client answers the primary's): waiting can never help.
      flow.ungated = true
      return false
    }
    return true
  }

  /** The flow of an inbound frame, if tracked. */
  #flowOf(frame: Uint8Array): Flow | undefined {
    const s = parseTcpSegment(frame)
    return s && this.#flows.get(`${s.dst}>${s.src}`)
  }

  /** Bookkeeping of a frame given to the guest: RST/FIN end the flow. */
  #noteInbound(frame: Uint8Array): void {
    const s = parseTcpSegment(frame)
    if (!s) return
    const key = `${s.dst}>${s.src}`
    const flow = this.#flows.get(key)
    if (!flow) return
    if (s.flags & TCP_RST) {
      this.#flows.delete(key)
      return
    }
    flow.lastSeen = this.#now()
    if (s.flags & TCP_FIN) flow.finIn = true
    if (flow.finIn && flow.finOut) this.#flows.delete(key)
  }

  #pump(): void {
    const now = this.#now()
    while (this.#queue.length > 0) {
      const head = this.#queue[0]!
      if (this.#canHold() && this.#ahead(head.frame)) {
        if (head.since === undefined) {
          head.since = now
          this.#held++
        }
        const left = head.since + this.#timeoutMs - now
        if (left > 0) {
          this.#clearTimer()
          this.#timer = setTimeout(() => {
            this.#timer = undefined
            this.#pump()
          }, left)
          return
        }
        this.#byTimeout++
        // WHY stop gating it: what it tracked is evidently not what the peer acknowledges (a
        // retransmission learned after a reset, or the guest really lost the stream); holding
        // every later segment of it for the full timeout would only stall the guest further.
        const flow = this.#flowOf(head.frame)
        if (flow) flow.ungated = true
      } else if (head.since !== undefined) {
        this.#byCatchUp++
      }
      if (head.since !== undefined) this.#noteHold(now - head.since)
      this.#queue.shift()
      this.#clearTimer()
      this.#noteInbound(head.frame)
      head.resolve()
    }
  }

  #noteHold(ms: number): void {
    if (ms > this.#maxHoldMs) this.#maxHoldMs = ms
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }

  /** Bounded memory: the flow cap, and a sweep of idle flows at most once per second. */
  #bound(now: number): void {
    while (this.#flows.size > this.#maxFlows) {
      const oldest = this.#flows.keys().next().value as string
      this.#flows.delete(oldest)
    }
    if (now - this.#lastSweep < 1000) return
    this.#lastSweep = now
    for (const [key, flow] of this.#flows) {
      if (now - flow.lastSeen > this.#idleMs) this.#flows.delete(key)
    }
  }
}
