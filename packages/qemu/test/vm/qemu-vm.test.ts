// QemuVm on real QEMU: frames both ways through Node (with a redirector reconnect), device state
// round trip after a memory copy, a snapshot QEMU fails to load (and the full import after it), a
// page written into a paused guest seen through redis, SIGKILL.
import { PageHasher } from '@plover/vmsync'
import t from 'tap'
import { compareDeviceState } from '../../src/migration/compare-state.js'
import { snapshotStream } from '../../src/migration/snapshot-image.js'
import { isSnapshotState } from '../../src/migration/snapshot-state.js'
import { bootTestGuest } from '../../src/testing/boot-test-guest.js'
import { requireQemu } from '../../src/testing/require-qemu.js'
import { type DeviceStateFormat, QemuVm } from '../../src/vm/qemu-vm.js'
import { VmCloner } from '../fixtures/clone-vm.js'
import { pingThroughNode } from '../fixtures/ping.js'
import { bootRedisGuest, redis } from '../fixtures/redis-guest.js'

t.test('with clones of one booted guest', async (t) => {
  const env = requireQemu(t)
  if (!env) return
  const template = await bootTestGuest(t, env, { memoryMiB: 128, nic: { kind: 'user', redirectors: true } })
  const cloner = new VmCloner(template)
  const hasher = new PageHasher({ threads: 2 })
  t.teardown(() => hasher.close())
  const open = async (deviceStateFormat: DeviceStateFormat = 'snapshot') => {
    const c = await cloner.clone()
    const vm = await QemuVm.open({
      process: c.process,
      hasher,
      standbys: c.standbys,
      removeRamOnClose: true,
      deviceStateFormat,
    })
    t.teardown(async () => {
      await vm.close()
      await c.cleanup()
    })
    return vm
  }

  t.test('frames flow both ways through Node, also after an indev reconnect', async (t) => {
    const vm = await open()
    await vm.resume()
    await pingThroughNode(vm, 1)
    const c1 = vm.frameCounters!
    t.ok(c1.inIn.frames >= 2, `injected ${c1.inIn.frames} frames (ARP reply + echo)`)
    t.ok(c1.outOut.frames >= 2, `the guest sent ${c1.outOut.frames} frames (ARP request + echo reply)`)
    // Dropping Node's connection of an indev makes QEMU's redirector deaf until it is recreated.
    const up = new Promise<void>((r) => vm.frames!.once('link-up', () => r()))
    vm.frames!.disconnect('inIn')
    await up
    t.equal(vm.frameCounters!.inIn.reconnects, 1)
    await pingThroughNode(vm, 2)
    t.pass('the recreated redirector delivers frames again')
  })

  for (const format of ['snapshot', 'migration'] as const)
    t.test(`device state round trip after copying memory (${format}); both VMs continue`, async (t) => {
      const [a, b] = [await open(format), await open(format)]
      await a.pause()
      await a.dirty.reset()
      await a.resume()
      await pingThroughNode(a, 3)
      await a.pause()
      const dirty = await a.dirty.collect()
      t.ok(dirty.length > 0, `the ping dirtied ${dirty.length} pages`)
      t.equal(a.dirtyInfo?.kind, 'hash-scan', 'this kernel has no soft-dirty: hash-scan was selected')
      t.equal(a.pageHashes?.byteLength, a.pageCount * 16, 'the scan vector is exposed for the sync protocol')
      await b.pause()
      const buf = new Uint8Array(1024 * a.pageSize)
      for (let from = 0; from < a.pageCount; from += 1024) {
        const idx = Uint32Array.from({ length: Math.min(1024, a.pageCount - from) }, (_, i) => from + i)
        await a.readPages(idx, buf)
        await b.writePages(idx, buf)
      }
      t.equal(a.pageHashes?.byteLength, a.pageCount * 16, 'reading pages does not invalidate the vector')
      const state = await a.exportDeviceState()
      t.equal(await a.exportDeviceState(), state, 'a second export while still paused returns the same state')
      t.equal(isSnapshotState(state), format === 'snapshot', `exported as a ${format}`)
      t.comment(`export: ${a.lastExport!.durationMs.toFixed(1)} ms, ${a.lastExport!.streamBytes} bytes`)
      const oldPid = b.process.pid
      await b.importDeviceState(state)
      t.comment(`import: ${b.lastImport!.durationMs.toFixed(1)} ms`)
      if (format === 'snapshot') t.equal(b.process.pid, oldPid, 'B loaded it into its own QEMU')
      else t.not(b.process.pid, oldPid, 'B now runs in the standby')
      t.equal(b.runState, 'paused')
      const diff = compareDeviceState(state, await b.exportDeviceState())
      t.ok(diff.same, `re-export equals the import apart from the RTC clock (${JSON.stringify(diff)})`)
      await a.resume()
      await b.resume()
      await Promise.all([pingThroughNode(a, 4), pingThroughNode(b, 4)])
      t.pass('both answer after the transfer')
    })

  t.test('a snapshot QEMU fails to load is an error; the next full import brings the VM back', async (t) => {
    const [a, b] = [await open('snapshot'), await open('snapshot')]
    await a.resume()
    await pingThroughNode(a, 5)
    await a.pause()
    await b.pause()
    const copyRam = async () => {
      const buf = new Uint8Array(1024 * a.pageSize)
      for (let from = 0; from < a.pageCount; from += 1024) {
        const idx = Uint32Array.from({ length: Math.min(1024, a.pageCount - from) }, (_, i) => from + i)
        await a.readPages(idx, buf)
        await b.writePages(idx, buf)
      }
    }
    await copyRam()
    const good = await a.exportDeviceState()
    // A well-formed image whose stream QEMU rejects: the RTC section claims version 255. Our own
    // parser accepts it (it is a valid qcow2 snapshot); QEMU resets the machine, then fails.
    const bad = Uint8Array.from(good)
    const stream = snapshotStream(bad)
    const rtc = stream.indexOf(Buffer.from('\x0bmc146818rtc', 'latin1'))
    t.ok(rtc > 0, 'the stream has an RTC section')
    stream.writeUInt32BE(255, rtc + 12 + 4) // after the name: instance id, then version id
    const err = await b.importDeviceState(bad).then(
      () => undefined,
      (e: Error) => e,
    )
    t.ok(err, `QEMU refused it: ${err?.message.slice(0, 160)}`)
    t.not(b.runState, 'exited', 'QEMU is still alive')
    // What the backup's next full sync does: all of RAM, then the device state.
    await b.pause()
    await copyRam()
    await b.importDeviceState(good)
    const diff = compareDeviceState(good, await b.exportDeviceState())
    t.ok(diff.same, `the good state is in (${JSON.stringify(diff)})`)
    await b.resume()
    await pingThroughNode(b, 6)
    t.pass('and the VM answers again')
  })

  t.test('SIGKILL is reported once as exit with the signal', async (t) => {
    const vm = await open()
    const exit = new Promise<{ signal: string | null; reason: string }>((r) => vm.once('exit', r))
    vm.process.kill('SIGKILL')
    const info = await exit
    t.equal(info.signal, 'SIGKILL')
    t.match(info.reason, /killed by SIGKILL/)
    t.equal(vm.runState, 'exited')
    await t.rejects(vm.pause(), /has exited/)
  })
})

t.test('a page written into the paused guest changes what redis answers', async (t) => {
  const env = requireQemu(t)
  if (!env) return
  const { vm: proc, port } = await bootRedisGuest(t, env)
  const hasher = new PageHasher({ threads: 1 })
  t.teardown(() => hasher.close())
  const vm = await QemuVm.open({ process: proc, hasher, removeRamOnClose: true })
  const before = `plover-${process.pid}-AAAAAAAAAAAAAAAA`
  const after = `plover-${process.pid}-BBBBBBBBBBBBBBBB`
  await redis(port, 'SET', 'k', before)
  await vm.pause()
  await t.rejects(
    vm.resume().then(() => vm.writePages(Uint32Array.of(0), new Uint8Array(4096))),
    /paused/,
    'refused while running',
  )
  await vm.pause()
  const chunk = 4096
  const page = new Uint8Array(vm.pageSize * chunk)
  let patched = 0
  for (let from = 0; from < vm.pageCount; from += chunk) {
    const idx = Uint32Array.from({ length: Math.min(chunk, vm.pageCount - from) }, (_, i) => from + i)
    await vm.readPages(idx, page)
    const view = Buffer.from(page.buffer, 0, idx.length * vm.pageSize)
    for (let at = view.indexOf(before); at >= 0; at = view.indexOf(before, at + 1)) {
      // The value may straddle a page boundary: patch in place and write every page it touches.
      view.write(after, at, 'latin1')
      const first = Math.floor(at / vm.pageSize)
      const last = Math.floor((at + before.length - 1) / vm.pageSize)
      const pages = idx.subarray(first, last + 1)
      await vm.writePages(pages, view.subarray(first * vm.pageSize, (last + 1) * vm.pageSize))
      patched++
    }
  }
  t.ok(patched > 0, `patched ${patched} copies of the value in guest RAM`)
  await vm.resume()
  t.equal(await redis(port, 'GET', 'k'), after, 'redis returns the bytes written into its memory')
  await vm.close()
})
