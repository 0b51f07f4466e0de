// Frames relayed through Node carry a real redis session: a client in its own network namespace
// talks to the guest over a bridge and tap, and every frame in both directions passes through
// the filter-redirector sockets and Node (net → Node → guest, guest → Node → net).
import { PageHasher } from '@plover/vmsync'
import t from 'tap'
import { DEFAULT_GUEST_MAC } from '../../src/launch/vm-config.js'
import { TestNetwork } from '../../src/net/test-network.js'
import { bootTestGuest } from '../../src/testing/boot-test-guest.js'
import { requireQemu } from '../../src/testing/require-qemu.js'
import { QemuVm } from '../../src/vm/qemu-vm.js'

t.test('a redis session through Node-relayed frames', async (t) => {
  const env = requireQemu(t)
  if (!env) return
  const net = await TestNetwork.create()
  t.teardown(() => net.dispose())
  const tap = await net.addTap()
  const guestIp = net.guestAddress(10).split('/')[0]
  const proc = await bootTestGuest(t, env, {
    nic: { kind: 'tap', ifname: tap, redirectors: true },
    ip: net.guestAddress(10),
    memoryMiB: 128,
  })
  const hasher = new PageHasher({ threads: 1 })
  t.teardown(() => hasher.close())
  const vm = await QemuVm.open({ process: proc, hasher, removeRamOnClose: true })
  t.teardown(() => vm.close())
  let relay = true
  vm.host.on('net-frame', (f) => {
    if (relay) void vm.injectFrame(f).catch(() => undefined)
  })
  let firstOut: Uint8Array | undefined
  vm.on('frame-out', (f) => {
    firstOut ??= f
    if (relay) void vm.frames!.toNet(f).catch(() => undefined)
  })
  const cli = (...args: string[]) =>
    net.execInNamespace('redis-cli', ['-h', guestIp, ...args], { timeoutMs: 30_000 })

  t.equal((await cli('PING')).stdout.trim(), 'PONG')
  // The launcher passes vnet_hdr=off on the tap: frames in the filter chain are plain Ethernet
  // (with the tap default, virtio-net would put a 12-byte virtio_net_hdr in front of each).
  const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':')
  const f = Buffer.from(firstOut!)
  t.equal(hex(f.subarray(6, 12)), DEFAULT_GUEST_MAC, 'bytes 6..12: the source MAC is the guest')
  t.ok(
    [0x0800, 0x0806, 0x86dd].includes(f.readUInt16BE(12)),
    `bytes 12..14: an EtherType (0x${f.readUInt16BE(12).toString(16)})`,
  )
  let firstIn: Buffer | undefined
  vm.host.once('net-frame', (frame) => {
    firstIn = Buffer.from(frame)
  })
  t.equal((await cli('SET', 'relayed', 'through-node')).stdout.trim(), 'OK')
  t.equal((await cli('GET', 'relayed')).stdout.trim(), 'through-node')
  t.ok(firstIn, 'a frame from the network reached Node')
  if (firstIn) {
    // A destination MAC first: the guest's own, or a group address — broadcast, or multicast
    // such as the IPv6 router solicitation the client namespace sends when its link comes up. A
    // virtio_net_hdr in front instead would shift the EtherType checked next.
    t.ok(
      hex(firstIn.subarray(0, 6)) === DEFAULT_GUEST_MAC || (firstIn[0]! & 1) === 1,
      `frames toward the guest start with its MAC or a group address (${hex(firstIn.subarray(0, 6))})`,
    )
    t.ok([0x0800, 0x0806, 0x86dd].includes(firstIn.readUInt16BE(12)), 'and carry an EtherType at 12')
  }
  const bench = await net.execInNamespace(
    'redis-benchmark',
    ['-h', guestIp, '-n', '2000', '-c', '4', '-t', 'set,get', '-q'],
    { timeoutMs: 120_000 },
  )
  t.comment(
    bench.stdout
      .replace(/\r/g, '\n')
      .trim()
      .split('\n')
      .filter((l) => /requests per second/.test(l))
      .join('; '),
  )
  const c = vm.frameCounters!
  t.comment(JSON.stringify(c))
  for (const name of ['inOut', 'inIn', 'outIn', 'outOut'] as const) {
    t.ok(c[name].frames > 2000, `${name} carried ${c[name].frames} frames`)
    t.equal(c[name].decodeErrors, 0)
  }
  t.equal(c.inOut.frames, c.inIn.frames, 'every frame from the network was injected')
  t.equal(c.outOut.frames, c.outIn.frames, 'every frame from the guest was released')
  // The client only acknowledges bytes it received from this guest, which the ACK gate saw first.
  t.comment(`ack gate: ${JSON.stringify(vm.ackGateCounters)}`)
  t.match(vm.ackGateCounters, { held: 0 }, 'the ACK gate never holds a frame of a primary')
  t.ok(vm.ackGateCounters!.flows <= 4, 'closed connections are forgotten')

  relay = false // without Node relaying, the guest is unreachable: the frames really go through Node
  const cut = await net.execInNamespace('redis-cli', ['-h', guestIp, '-t', '2', 'PING'], {
    timeoutMs: 10_000,
    check: false,
  })
  t.not(cut.stdout.trim(), 'PONG', 'no answer while Node drops the frames')
})
