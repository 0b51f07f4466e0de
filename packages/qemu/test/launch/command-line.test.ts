import t from 'tap'
import { buildQemuCommandLine } from '../../src/launch/command-line.js'
import { redirectorObjectAddArgs } from '../../src/launch/redirectors.js'
import { standbyConfig } from '../../src/launch/standby.js'
import type { VmConfig } from '../../src/launch/vm-config.js'

const base: VmConfig = {
  name: 'a',
  boot: { kernel: '/k', initrd: '/i', append: 'console=ttyS0' },
  runDir: '/run/pl/a',
  nic: { kind: 'tap', ifname: 'tapA', redirectors: true },
}

function values(args: readonly string[], flag: string): string[] {
  return args.flatMap((a, i) => (args[i - 1] === flag ? [a] : []))
}

t.test('RAM is a shared file backend that the machine uses', async (t) => {
  const { args, paths } = buildQemuCommandLine({ ...base, memoryMiB: 128 })
  t.same(values(args, '-machine'), ['q35,memory-backend=mem0'])
  t.same(
    values(args, '-object')[0],
    'memory-backend-file,id=mem0,size=128M,mem-path=/dev/shm/plover-a.ram,share=on',
  )
  t.equal(paths.ramPath, '/dev/shm/plover-a.ram')
  t.same(
    values(buildQemuCommandLine({ ...base, ramPath: '/x/r' }).args, '-object')[0].split(',')[3],
    'mem-path=/x/r',
  )
  for (const f of ['-nodefaults', '-no-reboot']) t.ok(args.includes(f), f)
  t.same(values(args, '-vga'), ['none'])
  t.same(values(args, '-accel'), ['tcg'])
  t.same(values(args, '-qmp'), ['unix:/run/pl/a/qmp.sock,server=on,wait=off'])
})

t.test('tap NIC with fixed MAC and the four redirectors in the working order', async (t) => {
  const { args, paths } = buildQemuCommandLine(base)
  t.same(values(args, '-netdev'), ['tap,id=net0,ifname=tapA,script=no,downscript=no,vnet_hdr=off'])
  t.match(values(args, '-device')[0], /^virtio-net-pci,netdev=net0,mac=52:54:00:77:00:10/)
  t.same(values(args, '-object').slice(1), [
    'filter-redirector,id=f_in_out,netdev=net0,queue=tx,outdev=red_in_out',
    'filter-redirector,id=f_in_in,netdev=net0,queue=tx,indev=red_in_in',
    'filter-redirector,id=f_out_in,netdev=net0,queue=rx,indev=red_out_in',
    'filter-redirector,id=f_out_out,netdev=net0,queue=rx,outdev=red_out_out',
  ])
  t.same(values(args, '-chardev').slice(1), [
    'socket,id=red_in_out,path=/run/pl/a/red-in_out.sock,server=on,wait=off',
    'socket,id=red_in_in,path=/run/pl/a/red-in_in.sock,server=on,wait=off',
    'socket,id=red_out_in,path=/run/pl/a/red-out_in.sock,server=on,wait=off',
    'socket,id=red_out_out,path=/run/pl/a/red-out_out.sock,server=on,wait=off',
  ])
  const lastChardev = args.lastIndexOf('-chardev')
  const firstFilter = args.findIndex((a) => a.startsWith('filter-redirector'))
  t.ok(lastChardev < firstFilter, 'chardevs precede the filters that use them')
  t.same(
    redirectorObjectAddArgs(paths.redirectors!.inIn, 'net0', { position: 'id=f_out_in', insert: 'before' }),
    {
      'qom-type': 'filter-redirector',
      id: 'f_in_in',
      netdev: 'net0',
      queue: 'tx',
      indev: 'red_in_in',
      position: 'id=f_out_in',
      insert: 'before',
    },
  )
})

t.test('no NIC, user NIC, vnet header', async (t) => {
  t.same(values(buildQemuCommandLine({ ...base, nic: { kind: 'none' } }).args, '-netdev'), [])
  const user = buildQemuCommandLine({
    ...base,
    nic: { kind: 'user', hostForwards: [{ hostPort: 16379, guestPort: 6379 }] },
  })
  t.same(values(user.args, '-netdev'), ['user,id=net0,hostfwd=tcp:127.0.0.1:16379-:6379'])
  t.equal(user.paths.redirectors, undefined)
  const vnet = buildQemuCommandLine({
    ...base,
    nic: { kind: 'tap', ifname: 't', redirectors: true, vnetHdr: true },
  })
  t.ok(
    values(vnet.args, '-object')
      .slice(1)
      .every((o) => o.endsWith(',vnet_hdr_support=on')),
  )
  t.same(
    values(vnet.args, '-netdev'),
    ['tap,id=net0,ifname=t,script=no,downscript=no'],
    'vnetHdr keeps the tap default',
  )
})

t.test('standby: identical guest-visible args, own name/RAM/tap, -incoming defer', async (t) => {
  const sb = standbyConfig(base, { name: 'a-sb1', ramPath: '/dev/shm/backup.ram', tapIfname: 'tapB' })
  const p = buildQemuCommandLine(base).args
  const s = buildQemuCommandLine(sb).args
  t.same(s.slice(-2), ['-incoming', 'defer'])
  t.equal(s.length, p.length + 2)
  const differing = p.flatMap((a, i) => (a === s[i] ? [] : [[a, s[i]]]))
  // Only names, host paths and the tap backend differ; nothing the guest sees.
  for (const [a, b] of differing) {
    t.ok(/\/run\/pl\/a|plover-a|tapA|^a,/.test(a) && /a-sb1|backup\.ram|tapB/.test(b), `${a} → ${b}`)
  }
  t.same(values(s, '-device'), values(p, '-device'))
  t.throws(() =>
    standbyConfig({ ...base, nic: { kind: 'none' } }, { name: 'x', ramPath: '/r', tapIfname: 't' }),
  )
})

t.test('names and socket paths are validated', async (t) => {
  t.throws(() => buildQemuCommandLine({ ...base, name: 'a b' }), /invalid VM name/)
  t.throws(() => buildQemuCommandLine({ ...base, runDir: `/tmp/${'x'.repeat(120)}` }), /too long/)
})
