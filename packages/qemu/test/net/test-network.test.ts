import { spawnSync } from 'node:child_process'
import t, { type Test } from 'tap'
import { GUEST_REDIS_PORT } from '../../src/guest/init-script.js'
import { guestBoot } from '../../src/launch/guest-boot.js'
import { launch } from '../../src/launch/qemu-process.js'
import type { VmConfig } from '../../src/launch/vm-config.js'
import { ip, listLinks, listNamespaces } from '../../src/net/ip.js'
import { networkId } from '../../src/net/names.js'
import { TestNetwork } from '../../src/net/test-network.js'
import { bootTestGuest } from '../../src/testing/boot-test-guest.js'
import { requireQemu } from '../../src/testing/require-qemu.js'
import { uniqueVmName } from '../../src/testing/unique-name.js'

async function gone(t: Test, names: { links: string[]; namespaces: string[] }) {
  const links = await listLinks()
  const namespaces = await listNamespaces()
  for (const l of names.links) t.notOk(links.includes(l), `link ${l} removed`)
  for (const n of names.namespaces) t.notOk(namespaces.includes(n), `netns ${n} removed`)
}

t.test(
  'redis in a guest on a tap is reachable from the client namespace; everything removed after',
  async (t) => {
    const env = requireQemu(t)
    if (!env) return
    const net = await TestNetwork.create()
    t.teardown(() => net.dispose())
    const tap = await net.addTap()
    const vm = await bootTestGuest(t, env, { nic: { kind: 'tap', ifname: tap }, ip: net.guestAddress(10) })
    const host = net.guestAddress(10).split('/')[0]
    const cli = (...args: string[]) =>
      net.execInNamespace('redis-cli', ['-h', host, '-p', String(GUEST_REDIS_PORT), ...args], {
        timeoutMs: 30_000,
      })
    t.equal((await cli('PING')).stdout.trim(), 'PONG')
    t.equal((await cli('SET', 'plover', 'replicated')).stdout.trim(), 'OK')
    t.equal((await cli('GET', 'plover')).stdout.trim(), 'replicated')
    // The host itself has no address on the bridge: the guest is reachable only from the namespace.
    const hostAddrs = (await ip('-o', 'addr', 'show', 'dev', net.bridge)).stdout
    t.notMatch(hostAddrs, /inet /, 'bridge has no IPv4 address on the host')
    const names = net.resourceNames
    t.ok(names.links.includes(tap))
    await vm.stop({ removeRam: true })
    await net.dispose()
    await gone(t, names)
  },
)

t.test('cleanupLeftovers removes devices of dead owners and keeps live ones', async (t) => {
  if (process.getuid?.() !== 0) {
    t.plan(0, 'needs root for ip link/netns')
    return
  }
  const dead = spawnSync('true').pid! // exited: its pid names a dead owner
  const id = networkId('plv', dead, 99)
  const staleBridge = `${id}br`
  const staleNs = `${id}-client`
  t.teardown(async () => {
    await ip('link', 'del', staleBridge).catch(() => {})
    await ip('netns', 'del', staleNs).catch(() => {})
  })
  await ip('link', 'add', staleBridge, 'type', 'bridge')
  await ip('netns', 'add', staleNs)
  const live = await TestNetwork.create() // create() itself cleans leftovers first
  t.teardown(() => live.dispose())
  await gone(t, { links: [staleBridge], namespaces: [staleNs] })
  // A second cleanup must not touch the live network of this process.
  await TestNetwork.cleanupLeftovers()
  t.ok((await listLinks()).includes(live.bridge), 'live bridge kept')
  t.ok((await listNamespaces()).includes(live.namespace), 'live namespace kept')
  const names = live.resourceNames
  await live.dispose()
  await gone(t, names)
})

t.test('a failing create removes what it made', async (t) => {
  if (process.getuid?.() !== 0) {
    t.plan(0, 'needs root for ip link/netns')
    return
  }
  // Names of this process's networks start with the prefix + our pid (see names.ts).
  const mine = networkId('plv', process.pid, 0).slice(0, -2)
  await t.rejects(TestNetwork.create({ subnet: '10.77.0', clientHost: 999 }), { name: 'CommandError' })
  t.same(
    (await listLinks()).filter((l) => l.startsWith(mine)),
    [],
    'no devices of this process left',
  )
  t.same(
    (await listNamespaces()).filter((n) => n.startsWith(mine)),
    [],
    'no namespaces of this process left',
  )
})

t.test('a tap is held by one QEMU: a second launch on it fails typed, with the cause', async (t) => {
  const env = requireQemu(t)
  if (!env) return
  const net = await TestNetwork.create()
  t.teardown(() => net.dispose())
  const tap = await net.addTap()
  const cfg = (name: string): VmConfig => ({
    name,
    boot: guestBoot(env.image),
    memoryMiB: 128,
    incoming: 'defer', // standbys: no boot needed to hold the tap
    nic: { kind: 'tap', ifname: tap },
    qemuBinary: env.qemuBinary,
  })
  const first = await launch(cfg(uniqueVmName('tapa')))
  t.teardown(() => first.stop({ removeRam: true }))
  await t.rejects(launch(cfg(uniqueVmName('tapb'))), {
    name: 'QemuLaunchError',
    message: /exited during startup[\s\S]*Device or resource busy/,
  })
  t.equal((await first.qmp.queryStatus()).status, 'inmigrate', 'the holder is unaffected')
})
