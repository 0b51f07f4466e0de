// vmsync's full sync protocol (VmReplica primary + backup, in-memory ordered log, authenticated TCP
// sync link, PageHasher) on two real QemuVm replicas running redis: one full sync, then two VSMR
// syncs with redis writes in between. After every sync, with both VMs still paused, the backup's
// RAM equals the primary's byte for byte and the device state is the same (modulo the RTC clock
// and the RAM blocks' mapping addresses); then both resume and answer GETs identically. Once per device-state form: a snapshot loaded into the
// backup's own QEMU (the default), and a migration stream loaded into armed standbys.
import {
  connectSyncLink,
  MemoryLogCluster,
  PageHasher,
  type ReplicatedVm,
  SyncLinkServer,
  SyncMode,
  type SyncReport,
  type TcpSyncLink,
  VmReplica,
} from '@plover/vmsync'
import t from 'tap'
import { compareDeviceState, sameDeviceState } from '../../src/migration/compare-state.js'
import { exportDeviceState } from '../../src/migration/device-state.js'
import { requireQemu } from '../../src/testing/require-qemu.js'
import { type DeviceStateFormat, QemuVm } from '../../src/vm/qemu-vm.js'
import { bootRedisGuest, redis, redisPipe, redisStandbyPool } from '../fixtures/redis-guest.js'

const PSK = Buffer.from('plover-qemu-test-psk-0123456789ab')

/**
 * The VM as VmReplica sees it, except that resume() is a no-op while `held`: the sync leaves both
 * VMs paused so the test can compare them at the exact state the protocol produced.
 */
function holdResume(vm: QemuVm): { view: ReplicatedVm; held: { on: boolean } } {
  const held = { on: false }
  const view = new Proxy(vm, {
    get(target, prop) {
      if (prop === 'resume') return async () => (held.on ? undefined : target.resume())
      const v = Reflect.get(target, prop, target)
      return typeof v === 'function' ? v.bind(target) : v
    },
  }) as unknown as ReplicatedVm
  return { view, held }
}

function waitEvent<A extends unknown[]>(em: VmReplica, event: string, ms = 60_000): Promise<A> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${event}`)), ms)
    ;(em as unknown as { once(e: string, f: (...a: A) => void): void }).once(event, (...a: A) => {
      clearTimeout(timer)
      resolve(a)
    })
  })
}

for (const format of ['snapshot', 'migration'] as const satisfies DeviceStateFormat[])
  t.test(
    `VmReplica keeps a QEMU backup byte-identical to its primary: full + 2 VSMR syncs (${format})`,
    async (t) => {
      const env = requireQemu(t)
      if (!env) return
      const started = performance.now()
      const hasher = new PageHasher({ threads: 2 })
      t.teardown(() => hasher.close())
      const a = await bootRedisGuest(t, env, { memoryMiB: 128 })
      const b = await bootRedisGuest(t, env, { memoryMiB: 128 })
      // As examples/qemu-redis runs them: two ready, armed for the import in advance.
      const { pool: standbys, portOf } = redisStandbyPool(t, b.vm, {
        ramPath: b.vm.paths.ramPath,
        namePrefix: 'rstandby',
        size: 2,
        armIncoming: true,
        known: [b],
      })
      const common0 = { hasher, removeRamOnClose: true, deviceStateFormat: format }
      const pvm = await QemuVm.open({ ...common0, process: a.vm })
      t.teardown(() => pvm.close())
      // A snapshot needs no standby: the backup's QEMU loads it in place.
      const bvm = await QemuVm.open({
        ...common0,
        process: b.vm,
        ...(format === 'migration' ? { standbys } : {}),
      })
      t.teardown(() => bvm.close())
      if (format === 'migration') standbys.fill()
      const backupPid = b.vm.pid

      const cluster = new MemoryLogCluster()
      const plog = cluster.join()
      const blog = cluster.join()
      cluster.setLeader(plog)
      const pv = holdResume(pvm)
      const bv = holdResume(bvm)
      const common = { hasher, quietMaxMs: 200, peerTimeoutMs: 30_000 }
      const primary = new VmReplica({
        ...common,
        log: plog,
        vm: pv.view,
        tracker: pvm.dirty,
        role: 'primary',
      })
      const backup = new VmReplica({ ...common, log: blog, vm: bv.view, tracker: bvm.dirty, role: 'backup' })
      const server = new SyncLinkServer({ psk: PSK })
      const { port } = await server.listen(0)
      const accepted = new Promise<TcpSyncLink>((r) => server.once('link', r))
      const linkA = await connectSyncLink({ host: '127.0.0.1', port, psk: PSK })
      const linkB = await accepted
      // The untrusted backup pauses and offers a pre-copy; once the rounds converge the primary
      // requests the full sync's marker itself. Both VMs stay paused after it, for the comparison.
      pv.held.on = true
      bv.held.on = true
      const fullDone = Promise.all([
        waitEvent<[SyncReport]>(primary, 'sync-completed'),
        waitEvent<[SyncReport]>(backup, 'sync-completed'),
      ])
      const rounds: { sentPages: number }[] = []
      primary.on('precopy-round', (r) => rounds.push(r))
      primary.attachLink(linkA)
      backup.attachLink(linkB)
      t.teardown(async () => {
        await primary.close()
        await backup.close()
        linkA.close()
        linkB.close()
        await server.close()
      })
      const failures: string[] = []
      primary.on('sync-failed', (f) => failures.push(`primary: ${f.reason}`))
      backup.on('sync-failed', (f) => failures.push(`backup: ${f.reason}`))

      const all = new Uint32Array(pvm.pageCount)
      for (let i = 0; i < all.length; i++) all[i] = i
      const pmem = Buffer.alloc(pvm.pageCount * pvm.pageSize)
      const bmem = Buffer.alloc(bvm.pageCount * bvm.pageSize)

      async function syncAndCompare(
        label: string,
        expectMode: SyncMode,
        keys: Map<string, string>,
        /** A sync already under way (not requested here). */
        running?: Promise<[[SyncReport], [SyncReport]]>,
      ) {
        pv.held.on = true
        bv.held.on = true
        let done = running
        if (!done) {
          done = Promise.all([
            waitEvent<[SyncReport]>(primary, 'sync-completed'),
            waitEvent<[SyncReport]>(backup, 'sync-completed'),
          ])
          await primary.requestSync()
        }
        const [[p], [bRep]] = await done
        t.equal(p.mode, expectMode, `${label}: ${SyncMode[expectMode]} sync`)
        t.same(failures, [], `${label}: no sync failed`)
        t.equal(pvm.runState, 'paused', `${label}: primary still paused for the comparison`)
        t.equal(bvm.runState, 'paused', `${label}: backup still paused for the comparison`)
        await pvm.readPages(all, pmem)
        await bvm.readPages(all, bmem)
        let diff = 0
        let first = -1
        const ps = pvm.pageSize
        for (let i = 0; i < all.length; i++) {
          if (!pmem.subarray(i * ps, (i + 1) * ps).equals(bmem.subarray(i * ps, (i + 1) * ps))) {
            diff++
            if (first < 0) first = i
          }
        }
        t.equal(diff, 0, `${label}: all ${all.length} pages equal byte for byte (first diff: ${first})`)
        t.ok(pmem.equals(bmem), `${label}: whole RAM equal`)
        // Compared as migration streams (what compare-state reads). The migration form's own export
        // is cached (QEMU refuses a second migration out of postmigrate); a snapshot VM exports one here.
        const stream = async (vm: QemuVm, side: string) =>
          format === 'migration'
            ? vm.exportDeviceState()
            : (
                await exportDeviceState(vm.process.qmp, {
                  socketPath: `${vm.process.paths.runDir}/compare-${side}.sock`,
                })
              ).state
        // compare-state skips the RTC clock and the RAM blocks' mapping addresses (QEMU's own
        // bookkeeping, see compare-state.ts); everything else must be equal.
        const [ps0, bs0] = [await stream(pvm, 'p'), await stream(bvm, 'b')]
        t.ok(
          sameDeviceState(ps0, bs0),
          `${label}: same device state (${JSON.stringify(compareDeviceState(ps0, bs0))})`,
        )
        pv.held.on = false
        bv.held.on = false
        await Promise.all([pvm.resume(), bvm.resume()])
        const bport = portOf(bvm.process)
        for (const [k, v] of keys) {
          const [pa, ba] = await Promise.all([redis(a.port, 'GET', k), redis(bport, 'GET', k)])
          t.equal(pa, v, `${label}: primary GET ${k}`)
          t.equal(ba, pa, `${label}: backup GET ${k} answers the same`)
        }
        t.comment(
          `${label}: mode ${SyncMode[p.mode]} union ${p.unionPages} divergent ${p.divergentPages} identical ${p.identicalPages} (backup divergent ${bRep.divergentPages})`,
        )
        return p
      }

      const keys = new Map<string, string>()
      const write = async (round: number) => {
        const cmds: string[][] = []
        for (let i = 0; i < 200; i++) cmds.push(['SET', `r${round}:${i}`, `${round}:${i}:${'x'.repeat(100)}`])
        await redisPipe(a.port, cmds)
        keys.set(`r${round}:0`, `${round}:0:${'x'.repeat(100)}`)
        keys.set(`r${round}:199`, `${round}:199:${'x'.repeat(100)}`)
      }
      await write(0)
      const full = await syncAndCompare('full', SyncMode.FullCompared, keys, fullDone)
      const precopied = rounds.reduce((n, r) => n + r.sentPages, 0)
      t.ok(rounds.length > 0 && precopied > 0, `pre-copy: ${rounds.length} round(s), ${precopied} pages`)
      t.equal(full.precopiedPages, precopied, 'the full sync counts them')
      // Nothing of the pre-copy leaks into the paused step: its bytes are its pages, the device
      // state and framing.
      t.ok(
        full.bytesSent <= full.divergentPages * 4096 + full.deviceStateSentBytes + 64 * 1024,
        `the full sync sent ${full.bytesSent} bytes for ${full.divergentPages} pages and ${full.deviceStateSentBytes} bytes of device state`,
      )
      t.ok(
        full.divergentPages < precopied,
        `the paused step sent ${full.divergentPages} pages, fewer than the ${precopied} pre-copied`,
      )
      // The backup booted the same kernel and initramfs: much of its RAM (zero pages, the same
      // code) already matches and is not sent.
      t.ok(full.identicalPages > 0, `full: ${full.identicalPages} of ${full.unionPages} pages not sent`)
      t.equal(full.identicalPages + full.divergentPages, full.unionPages)
      for (let round = 1; round <= 2; round++) {
        await write(round)
        const p = await syncAndCompare(`vsmr ${round}`, SyncMode.Vsmr, keys)
        t.ok(p.divergentPages > 0, `vsmr ${round}: the replicas had diverged and pages were sent`)
      }
      if (format === 'snapshot')
        t.equal(bvm.process.pid, backupPid, 'the backup kept its QEMU process (loaded in place)')
      else t.not(bvm.process.pid, backupPid, 'the backup runs in a swapped-in standby')
      t.comment(`total ${((performance.now() - started) / 1000).toFixed(1)} s`)
    },
  )
