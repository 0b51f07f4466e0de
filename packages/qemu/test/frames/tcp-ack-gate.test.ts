// TcpAckGate with synthetic frames: hold, release on catch-up and on timeout, order, sequence
// wraparound, passthrough of non-TCP and garbage, flow cleanup.
import t from 'tap'
import {
  parseTcpSegment,
  seqAfter,
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
  TcpAckGate,
} from '../../src/frames/tcp-ack-gate.js'

const GUEST = [10, 0, 2, 15]
const CLIENT = [10, 0, 2, 2]

interface Seg {
  readonly seq: number
  readonly ack?: number
  readonly flags?: number
  readonly payload?: number
  readonly sport?: number
  readonly dport?: number
}

function ipv4Tcp(src: number[], dst: number[], s: Seg): Buffer {
  const payload = s.payload ?? 0
  const f = Buffer.alloc(14 + 20 + 20 + payload)
  f.writeUInt16BE(0x0800, 12)
  f[14] = 0x45
  f.writeUInt16BE(40 + payload, 16)
  f[14 + 8] = 64
  f[14 + 9] = 6
  Buffer.from(src).copy(f, 26)
  Buffer.from(dst).copy(f, 30)
  const t = 34
  f.writeUInt16BE(s.sport ?? 6379, t)
  f.writeUInt16BE(s.dport ?? 40000, t + 2)
  f.writeUInt32BE(s.seq >>> 0, t + 4)
  f.writeUInt32BE((s.ack ?? 0) >>> 0, t + 8)
  f[t + 12] = 5 << 4
  f[t + 13] = s.flags ?? TCP_ACK
  return f
}

/** Guest → client (port 6379 → 40000 unless given). */
const out = (s: Seg) => ipv4Tcp(GUEST, CLIENT, s)
/** Client → guest. */
const inb = (s: Seg) => ipv4Tcp(CLIENT, GUEST, { ...s, sport: s.sport ?? 40000, dport: s.dport ?? 6379 })

function ipv6Tcp(src: number, dst: number, s: Seg): Buffer {
  const payload = s.payload ?? 0
  const f = Buffer.alloc(14 + 40 + 20 + payload)
  f.writeUInt16BE(0x86dd, 12)
  f[14] = 0x60
  f.writeUInt16BE(20 + payload, 18)
  f[20] = 6
  f[21] = 64
  f[14 + 8 + 15] = src
  f[14 + 24 + 15] = dst
  const t = 54
  f.writeUInt16BE(s.sport ?? 6379, t)
  f.writeUInt16BE(s.dport ?? 40000, t + 2)
  f.writeUInt32BE(s.seq >>> 0, t + 4)
  f.writeUInt32BE((s.ack ?? 0) >>> 0, t + 8)
  f[t + 12] = 5 << 4
  f[t + 13] = s.flags ?? TCP_ACK
  return f
}

/** The guest opened the flow (its SYN-ACK at `seq - 1`) and sent `payload` bytes from `seq`. */
function known(gate: TcpAckGate, seq: number, payload = 0, dport = 40000): void {
  gate.observeOutbound(out({ seq: (seq - 1) >>> 0, flags: TCP_SYN | TCP_ACK, dport }))
  if (payload) gate.observeOutbound(out({ seq, payload, dport }))
}

/** Whether the promise settled within a few macrotasks. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false
  void p.then(() => {
    done = true
  })
  await new Promise((r) => setImmediate(r))
  return done
}

t.test('parses IPv4, IPv6 and VLAN-tagged TCP; SYN and FIN take a sequence number', async (t) => {
  const s = parseTcpSegment(out({ seq: 100, ack: 7, payload: 10, flags: TCP_ACK | TCP_FIN }))!
  t.equal(s.seq, 100)
  t.equal(s.ack, 7)
  t.equal(s.seqLen, 11)
  t.equal(s.src, '0a00020f:6379')
  t.equal(s.dst, '0a000202:40000')
  t.equal(parseTcpSegment(out({ seq: 1, flags: TCP_SYN }))!.seqLen, 1)
  const v6 = parseTcpSegment(ipv6Tcp(1, 2, { seq: 5, payload: 3 }))!
  t.equal(v6.seqLen, 3)
  t.match(v6.src, /0001:6379$/)
  const plain = out({ seq: 9, payload: 4 })
  const tagged = Buffer.concat([plain.subarray(0, 12), Buffer.from([0x81, 0x00, 0, 5]), plain.subarray(12)])
  t.equal(parseTcpSegment(tagged)!.seqLen, 4)
  // Ethernet padding beyond the IP total length is not payload.
  t.equal(parseTcpSegment(Buffer.concat([out({ seq: 0 }), Buffer.alloc(6)]))!.seqLen, 0)
})

t.test('garbage and non-TCP frames parse to undefined, never throw', async (t) => {
  const udp = out({ seq: 0 })
  udp[23] = 17
  const badDoff = out({ seq: 0 })
  badDoff[34 + 12] = 0xf0 // 60-byte header in a 40-byte packet
  const badIhl = out({ seq: 0 })
  badIhl[14] = 0x42
  const fragment = out({ seq: 0 })
  fragment.writeUInt16BE(0x0010, 20)
  const arp = Buffer.alloc(42)
  arp.writeUInt16BE(0x0806, 12)
  for (const f of [
    Buffer.alloc(0),
    Buffer.alloc(13),
    out({ seq: 0 }).subarray(0, 40),
    udp,
    badDoff,
    badIhl,
    fragment,
    arp,
    new Uint8Array(100).fill(0xff),
  ]) {
    t.equal(parseTcpSegment(f), undefined)
  }
  // Random bytes (some with an IPv4/IPv6 type) never throw.
  let x = 12345
  const rnd = () => {
    x = (x * 1103515245 + 12345) >>> 0
    return x >>> 24
  }
  for (let i = 0; i < 2000; i++) {
    const f = Buffer.from(Array.from({ length: rnd() % 120 }, rnd))
    if (f.length > 14) f.writeUInt16BE(i % 2 ? 0x0800 : 0x86dd, 12)
    parseTcpSegment(f)
  }
})

t.test('seqAfter compares modulo 2^32', async (t) => {
  t.ok(seqAfter(1, 0))
  t.notOk(seqAfter(0, 1))
  t.notOk(seqAfter(5, 5))
  t.ok(seqAfter(3, 0xfffffff0), 'just past the wrap is after')
  t.notOk(seqAfter(0xfffffff0, 3))
})

t.test('an ACK ahead of what the guest sent waits until the guest sends it', async (t) => {
  const gate = new TcpAckGate()
  known(gate, 1000, 100) // sent up to 1100
  t.ok(await settled(gate.admit(inb({ seq: 1, ack: 1100, payload: 10 }))), 'ACK = SND.NXT passes')
  const held = gate.admit(inb({ seq: 11, ack: 1300, payload: 10 }))
  t.notOk(await settled(held), 'ACK beyond SND.NXT is held')
  gate.observeOutbound(out({ seq: 1100, payload: 100 })) // 1200: not yet
  t.notOk(await settled(held))
  gate.observeOutbound(out({ seq: 1200, payload: 100 })) // 1300
  t.ok(await settled(held), 'released once the guest sent that far')
  t.match(gate.counters, { held: 1, releasedByCatchUp: 1, releasedByTimeout: 0, flows: 1 })
})

t.test('a held frame blocks later frames, also unrelated ones: order is kept', async (t) => {
  const gate = new TcpAckGate()
  known(gate, 0, 10)
  const order: string[] = []
  const track = (name: string, p: Promise<void>) => p.then(() => order.push(name))
  const a = track('a', gate.admit(inb({ seq: 0, ack: 50 })))
  const arp = Buffer.alloc(42)
  arp.writeUInt16BE(0x0806, 12)
  const b = track('b', gate.admit(arp))
  const c = track('c', gate.admit(inb({ seq: 0, ack: 10, sport: 41000 })))
  t.notOk(await settled(Promise.race([a, b, c])), 'nothing overtakes the held frame')
  t.equal(gate.waiting, 3)
  gate.observeOutbound(out({ seq: 10, payload: 40 }))
  await Promise.all([a, b, c])
  t.same(order, ['a', 'b', 'c'])
  t.equal(gate.counters.held, 1, 'only the head was held')
})

t.test('a hold ends after the timeout; the frame is delivered anyway and counted', async (t) => {
  const gate = new TcpAckGate({ timeoutMs: 50 })
  known(gate, 0, 10)
  const t0 = performance.now()
  await gate.admit(inb({ seq: 0, ack: 99 }))
  const waited = performance.now() - t0
  t.ok(waited >= 45, `waited ${waited.toFixed(0)} ms`)
  t.match(gate.counters, { held: 1, releasedByTimeout: 1, releasedByCatchUp: 0 })
  t.ok(gate.counters.maxHoldMs >= 45)
})

t.test('sequence numbers wrap around 2^32', async (t) => {
  const gate = new TcpAckGate()
  known(gate, 0xffffff00, 0x80) // SND.NXT 0xffffff80
  const held = gate.admit(inb({ seq: 0, ack: 0x10 })) // past the wrap: ahead
  t.notOk(await settled(held))
  gate.observeOutbound(out({ seq: 0xffffff80, payload: 0x100 })) // SND.NXT 0x80 (wrapped)
  t.ok(await settled(held))
  t.ok(await settled(gate.admit(inb({ seq: 0, ack: 0xfffffff0 }))), 'an old ACK before the wrap passes')
  // A retransmission of old data does not move SND.NXT back.
  gate.observeOutbound(out({ seq: 0xffffff00, payload: 0x10 }))
  t.ok(await settled(gate.admit(inb({ seq: 0, ack: 0x80 }))))
})

t.test('never held: unknown flows, non-ACK and RST segments, other frames', async (t) => {
  const gate = new TcpAckGate()
  t.ok(await settled(gate.admit(inb({ seq: 0, ack: 12345 }))), 'unknown flow')
  known(gate, 0, 10)
  t.ok(await settled(gate.admit(inb({ seq: 0, ack: 999, flags: TCP_SYN }))), 'no ACK flag')
  t.ok(await settled(gate.admit(inb({ seq: 0, ack: 999, flags: TCP_RST | TCP_ACK }))), 'RST')
  t.ok(await settled(gate.admit(new Uint8Array([1, 2, 3]))), 'garbage')
  t.ok(await settled(gate.admit(inb({ seq: 0, ack: 999, dport: 80 }))), 'another guest port')
  t.equal(gate.counters.held, 0)
})

t.test('nothing is held while the guest cannot run; releaseAll and reset free waiting frames', async (t) => {
  let running = false
  const gate = new TcpAckGate({ canHold: () => running })
  known(gate, 0, 10)
  t.ok(await settled(gate.admit(inb({ seq: 0, ack: 99 }))), 'paused: passes')
  running = true
  const held = gate.admit(inb({ seq: 0, ack: 99 }))
  const behind = gate.admit(inb({ seq: 0, ack: 5 }))
  t.notOk(await settled(held))
  gate.releaseAll()
  t.ok(await settled(Promise.all([held, behind])))
  t.equal(gate.counters.releasedByFlush, 1)
  const again = gate.admit(inb({ seq: 0, ack: 99 }))
  t.notOk(await settled(again))
  gate.reset()
  t.ok(await settled(again))
  t.equal(gate.counters.flows, 0, 'reset forgets every flow')
  t.ok(await settled(gate.admit(inb({ seq: 0, ack: 99 }))), 'after a reset the flow is unknown: passes')
  gate.observeOutbound(out({ seq: 500, payload: 1 }))
  t.notOk(await settled(gate.admit(inb({ seq: 0, ack: 999 }))), 'tracking restarts from the next output')
  gate.releaseAll()
})

t.test('flows are forgotten on RST, after both FINs, when idle, and beyond the cap', async (t) => {
  let now = 0
  const gate = new TcpAckGate({ now: () => now, idleMs: 10_000, maxFlows: 3 })
  known(gate, 0, 1, 1)
  gate.observeOutbound(out({ seq: 0, flags: TCP_RST, dport: 1 }))
  t.equal(gate.counters.flows, 0, 'guest RST')
  known(gate, 0, 1, 2)
  await gate.admit(inb({ seq: 0, ack: 0, flags: TCP_RST, sport: 2 }))
  t.equal(gate.counters.flows, 0, 'client RST')
  known(gate, 0, 1, 3)
  await gate.admit(inb({ seq: 0, ack: 1, flags: TCP_ACK | TCP_FIN, sport: 3 }))
  t.equal(gate.counters.flows, 1, 'one FIN: still tracked')
  gate.observeOutbound(out({ seq: 1, flags: TCP_ACK | TCP_FIN, dport: 3 }))
  t.equal(gate.counters.flows, 0, 'both FINs')
  for (const p of [10, 11, 12, 13, 14]) known(gate, 0, 0, p)
  t.equal(gate.counters.flows, 3, 'cap')
  t.ok(await settled(gate.admit(inb({ seq: 0, ack: 99, sport: 10 }))), 'the oldest went first')
  now = 20_000
  known(gate, 0, 0, 20)
  t.equal(gate.counters.flows, 1, 'idle flows swept')
})

t.test('reset(from) continues from a copy of another gate’s flows', async (t) => {
  const primary = new TcpAckGate()
  const backup = new TcpAckGate()
  known(primary, 0, 100)
  known(backup, 0, 10)
  backup.reset(primary)
  t.ok(await settled(backup.admit(inb({ seq: 0, ack: 100 }))), 'the primary’s SND.NXT now applies')
  const held = backup.admit(inb({ seq: 0, ack: 150 }))
  t.notOk(await settled(held))
  primary.observeOutbound(out({ seq: 100, payload: 100 }))
  t.notOk(await settled(held), 'a copy, not shared state')
  backup.releaseAll()
})

t.test('a timed-out flow is not gated again; a foreign ISN is never held', async (t) => {
  const gate = new TcpAckGate({ timeoutMs: 30 })
  known(gate, 0, 10)
  await gate.admit(inb({ seq: 0, ack: 500 }))
  t.equal(gate.counters.releasedByTimeout, 1)
  t.ok(await settled(gate.admit(inb({ seq: 0, ack: 900 }))), 'the same flow passes from now on')
  // The guest answered a SYN with its own ISN 1000; the peer acknowledges another one.
  gate.observeOutbound(out({ seq: 999, flags: TCP_SYN | TCP_ACK, dport: 7 }))
  t.ok(await settled(gate.admit(inb({ seq: 0, ack: 5000, sport: 7 }))), 'no hold for a foreign ISN')
  gate.observeOutbound(out({ seq: 1000, payload: 5, dport: 7 }))
  t.ok(await settled(gate.admit(inb({ seq: 0, ack: 6000, sport: 7 }))), 'nor later')
  // The matching handshake ACK keeps the flow gated once data flows.
  gate.observeOutbound(out({ seq: 99, flags: TCP_SYN | TCP_ACK, dport: 8 }))
  t.ok(await settled(gate.admit(inb({ seq: 0, ack: 100, sport: 8 }))))
  gate.observeOutbound(out({ seq: 100, payload: 5, dport: 8 }))
  const held = gate.admit(inb({ seq: 0, ack: 110, sport: 8 }))
  t.notOk(await settled(held))
  gate.releaseAll()
  t.equal(gate.counters.held, 2)
})
