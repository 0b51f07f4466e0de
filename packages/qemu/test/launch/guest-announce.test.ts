// The virtio-net guest announce after an incoming migration is off by default (a freshly loaded
// backup would otherwise send gratuitous ARP/NA/MLD every sync: docs/divergence.md, cause 2).
import t from 'tap'
import { buildQemuCommandLine } from '../../src/launch/command-line.js'
import { standbyConfig } from '../../src/launch/standby.js'
import type { VmConfig } from '../../src/launch/vm-config.js'

const base: VmConfig = {
  name: 'a',
  boot: { kernel: '/k', initrd: '/i', append: 'console=ttyS0' },
  runDir: '/run/pl/a',
  nic: { kind: 'user', redirectors: true },
}

const nicDevice = (config: VmConfig) =>
  buildQemuCommandLine(config).args.find((a) => a.startsWith('virtio-net-pci,')) ?? ''

t.test('guest_announce=off unless guestAnnounce is true', async (t) => {
  t.match(nicDevice(base), /,guest_announce=off(,|$)/, 'user NIC: off by default')
  t.match(
    nicDevice({ ...base, nic: { kind: 'tap', ifname: 'tapA' } }),
    /,guest_announce=off(,|$)/,
    'tap NIC too',
  )
  t.match(nicDevice({ ...base, nic: { kind: 'user', guestAnnounce: false } }), /guest_announce=off/)
  t.notMatch(
    nicDevice({ ...base, nic: { kind: 'user', guestAnnounce: true } }),
    /guest_announce/,
    'opt back in',
  )
  t.notOk(
    buildQemuCommandLine({ ...base, nic: { kind: 'none' } }).args.some((a) => a.includes('guest_announce')),
    'no NIC, no option',
  )
})

t.test('a standby gets the same guest-visible feature bit as its primary', async (t) => {
  for (const guestAnnounce of [undefined, false, true]) {
    const primary: VmConfig = { ...base, nic: { kind: 'user', redirectors: true, guestAnnounce } }
    const standby = standbyConfig(primary, { name: 'a-standby', ramPath: '/dev/shm/plover-a.ram' })
    t.equal(nicDevice(standby), nicDevice(primary), `guestAnnounce ${guestAnnounce}`)
  }
})
