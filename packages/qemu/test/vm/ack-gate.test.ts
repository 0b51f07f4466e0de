// QemuVm's TCP ACK gate on a real guest, with a hand-made TCP connection to its redis through the
// redirectors: a segment acknowledging a reply the guest has not sent yet waits for the reply
// (and is then processed, not dropped), and a held segment is released by pause().
import { PageHasher } from '@plover/vmsync'
import t from 'tap'
import { GUEST_REDIS_PORT } from '../../src/guest/init-script.js'
import { bootTestGuest } from '../../src/testing/boot-test-guest.js'
import { requireQemu } from '../../src/testing/require-qemu.js'
import { QemuVm } from '../../src/vm/qemu-vm.js'
import { arpReply, classify, GUEST_MAC, PEER_MAC } from '../fixtures/frames.js'
import { GUEST_IP, PEER_IP } from '../fixtures/ping.js'

const SYN = 0x02
const PSH = 0x08
const ACK = 0x10

const bytes = (s: string, sep: string, radix: number) =>
  Buffer.from(s.split(sep).map((x) => Number.parseInt(x, radix)))

function sum16(buf: Buffer, start = 0): number {
  let sum = start
  for (let i = 0; i < buf.length; i += 2) sum += (buf[i]! << 8) + (buf[i + 1] ?? 0)
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16)
  return sum
}

/** A TCP segment from PEER_IP:sport to the guest's redis, with valid checksums. */
function segment(sport: number, seq: number, ack: number, flags: number, data = ''): Buffer {
  const payload = Buffer.from(data)
  const tcp = Buffer.alloc(20 + payload.length)
  tcp.writeUInt16BE(sport, 0)
  tcp.writeUInt16BE(GUEST_REDIS_PORT, 2)
  tcp.writeUInt32BE(seq >>> 0, 4)
  tcp.writeUInt32BE(ack >>> 0, 8)
  tcp[12] = 5 << 4
  tcp[13] = flags
  tcp.writeUInt16BE(64240, 14)
  payload.copy(tcp, 20)
  const pseudo = Buffer.alloc(12)
  bytes(PEER_IP, '.', 10).copy(pseudo, 0)
  bytes(GUEST_IP, '.', 10).copy(pseudo, 4)
  pseudo[9] = 6
  pseudo.writeUInt16BE(tcp.length, 10)
  tcp.writeUInt16BE(~sum16(tcp, sum16(pseudo)) & 0xffff, 16)
  const ip = Buffer.alloc(20)
  ip[0] = 0x45
  ip.writeUInt16BE(20 + tcp.length, 2)
  ip[8] = 64
  ip[9] = 6
  bytes(PEER_IP, '.', 10).copy(ip, 12)
  bytes(GUEST_IP, '.', 10).copy(ip, 16)
  ip.writeUInt16BE(~sum16(ip) & 0xffff, 10)
  return Buffer.concat([bytes(GUEST_MAC, ':', 16), bytes(PEER_MAC, ':', 16), Buffer.from([8, 0]), ip, tcp])
}

interface Out {
  readonly seq: number
  readonly flags: number
  readonly data: string
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A hand-made connection to the guest's redis through the VM's redirectors. */
async function connect(vm: QemuVm, sport: number) {
  const outs: Out[] = []
  vm.on('frame-out', (frame) => {
    const f = Buffer.from(frame)
    const c = classify(f)
    if (c.kind === 'arp-request' && c.target === PEER_IP) void vm.injectFrame(arpReply(PEER_IP, GUEST_IP))
    if (f.readUInt16BE(12) !== 0x0800 || f[23] !== 6 || f.readUInt16BE(36) !== sport) return
    const doff = (f[46]! >> 4) * 4
    const end = 14 + f.readUInt16BE(16)
    outs.push({ seq: f.readUInt32BE(38), flags: f[47]!, data: f.subarray(34 + doff, end).toString() })
  })
  const waitFor = async (what: string, pred: (o: Out) => boolean, ms = 30_000) => {
    const t0 = performance.now()
    for (;;) {
      const o = outs.find(pred)
      if (o) return o
      if (performance.now() - t0 > ms) throw new Error(`no ${what} from the guest`)
      await sleep(10)
    }
  }
  // Distinct replies (the guest retransmits unacknowledged ones).
  const pongs = () => new Set(outs.filter((o) => o.data.includes('+PONG')).map((o) => o.seq)).size
  await vm.injectFrame(segment(sport, 1000, 0, SYN))
  const synAck = await waitFor('SYN-ACK', (o) => (o.flags & (SYN | ACK)) === (SYN | ACK))
  const sndNxt = (synAck.seq + 1) >>> 0
  await vm.injectFrame(segment(sport, 1001, sndNxt, ACK))
  await vm.injectFrame(segment(sport, 1001, sndNxt, PSH | ACK, 'PING\r\n'))
  await waitFor('first +PONG', (o) => o.data.includes('+PONG'))
  // Next client seq and the guest's SND.NXT after its +PONG\r\n.
  return { waitFor, pongs, seq: 1007, sndNxt: (sndNxt + 7) >>> 0 }
}

/**
 * A primary would have answered a PING already; the client's next segment acks that reply. Sends
 * a PING and, before the guest answered it, a second PING acknowledging the reply.
 */
async function pingAckingTheReply(vm: QemuVm, c: Awaited<ReturnType<typeof connect>>, sport: number) {
  const first = vm.injectFrame(segment(sport, c.seq, c.sndNxt, PSH | ACK, 'PING\r\n'))
  const second = vm.injectFrame(segment(sport, c.seq + 6, c.sndNxt + 7, PSH | ACK, 'PING\r\n'))
  await Promise.all([first, second])
}

t.test('the ACK gate on a real guest', async (t) => {
  const env = requireQemu(t)
  if (!env) return
  const proc = await bootTestGuest(t, env, { memoryMiB: 128, nic: { kind: 'user', redirectors: true } })
  const hasher = new PageHasher({ threads: 1 })
  t.teardown(() => hasher.close())
  const vm = await QemuVm.open({
    process: proc,
    hasher,
    removeRamOnClose: true,
    tcpAckGate: { timeoutMs: 5000 },
  })
  t.teardown(() => vm.close())
  const sport = 40000 + (process.pid % 20000)
  const c = await connect(vm, sport)
  t.equal(vm.ackGateCounters?.held, 0, 'in-step segments pass')

  await pingAckingTheReply(vm, c, sport)
  await c.waitFor('third +PONG', () => c.pongs() >= 3)
  t.equal(c.pongs(), 3, 'the guest answered both PINGs: the segment acking its unsent reply was not dropped')
  t.comment(`ack gate: ${JSON.stringify(vm.ackGateCounters)}`)
  t.ok((vm.ackGateCounters?.releasedByCatchUp ?? 0) >= 1, 'it waited for the reply, then went in')
  t.equal(vm.ackGateCounters?.releasedByTimeout, 0)
  const seq = c.seq + 12
  const sndNxt = (c.sndNxt + 14) >>> 0

  // A segment acking bytes the guest will never send waits; pause() releases it.
  let done = false
  const stuck = vm.injectFrame(segment(sport, seq, sndNxt + 1000, ACK)).then(() => {
    done = true
  })
  await sleep(300)
  t.notOk(done, 'held while the guest runs')
  const held = vm.ackGateCounters!.held
  await vm.pause()
  await stuck
  t.equal(vm.ackGateCounters?.releasedByFlush, 1, 'pause released it')
  await vm.injectFrame(segment(sport, seq, sndNxt + 2000, ACK))
  t.equal(vm.ackGateCounters?.held, held, 'nothing is held while paused')
  await vm.resume()
})

t.test('tcpAckGate: false disables the gate (and the guest drops the early-acking segment)', async (t) => {
  const env = requireQemu(t)
  if (!env) return
  const proc = await bootTestGuest(t, env, { memoryMiB: 128, nic: { kind: 'user', redirectors: true } })
  const hasher = new PageHasher({ threads: 1 })
  t.teardown(() => hasher.close())
  const vm = await QemuVm.open({ process: proc, hasher, removeRamOnClose: true, tcpAckGate: false })
  t.teardown(() => vm.close())
  t.equal(vm.ackGateCounters, undefined)
  const sport = 40000 + ((process.pid + 1) % 20000)
  const c = await connect(vm, sport)
  await pingAckingTheReply(vm, c, sport)
  await sleep(2000)
  // Not asserted (it depends on the guest not having answered the first PING within the
  // microseconds between the two injections), but expected: 2 replies, the second PING dropped.
  t.comment(`without the gate the guest answered ${c.pongs()} of 3 PINGs`)
  t.ok(c.pongs() >= 2, 'at least the first two PINGs were answered')
})
