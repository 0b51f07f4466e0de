// A PLOVER-style sync loop over two QemuVm replicas running redis: pause both, hash both RAMs,
// copy only the divergent pages primary → backup, transfer the device state (as a snapshot the
// backup's QEMU loads in place, or as a migration stream into a fresh standby), resume both. After every epoch the backup's redis holds exactly the primary's
// dataset, while both keep running in between.
import { PageHasher } from '@plover/vmsync'
import t from 'tap'
import { diffDigests } from '../../src/dirty/hash-scan-tracker.js'
import { requireQemu } from '../../src/testing/require-qemu.js'
import { type DeviceStateFormat, QemuVm } from '../../src/vm/qemu-vm.js'
import { bootRedisGuest, redis, redisDigest, redisPipe, redisStandbyPool } from '../fixtures/redis-guest.js'

for (const deviceStateFormat of ['snapshot', 'migration'] as const satisfies DeviceStateFormat[])
  t.test(`divergent-page sync keeps the backup identical, three epochs (${deviceStateFormat})`, async (t) => {
    const env = requireQemu(t)
    if (!env) return
    const hasher = new PageHasher({ threads: 2 })
    t.teardown(() => hasher.close())
    const a = await bootRedisGuest(t, env)
    const b = await bootRedisGuest(t, env)
    const { pool: standbys, portOf } = redisStandbyPool(t, b.vm, {
      ramPath: b.vm.paths.ramPath,
      namePrefix: 'bstandby',
      known: [b],
    })
    const primary = await QemuVm.open({ process: a.vm, hasher, deviceStateFormat })
    t.teardown(() => primary.close())
    // removeRamOnClose: the backup's RAM file outlives the boot process it was created by.
    const backup = await QemuVm.open({ process: b.vm, hasher, standbys, removeRamOnClose: true })
    t.teardown(() => backup.close())
    if (deviceStateFormat === 'migration') standbys.fill()
    const backupPid = b.vm.pid

    for (let epoch = 1; epoch <= 3; epoch++) {
      await redisPipe(
        a.port,
        Array.from({ length: 500 }, (_, i) => ['SET', `e${epoch}:${i}`, `${epoch}:${i}:${'d'.repeat(200)}`]),
      )
      await redis(a.port, 'DEL', `e${epoch - 1}:0`)
      const paused = performance.now()
      await Promise.all([primary.pause(), backup.pause()])
      const [ha, hb] = await Promise.all([
        hasher.hash(primary.memorySource, 'all'),
        hasher.hash(backup.memorySource, 'all'),
      ])
      const hashed = performance.now()
      const divergent = diffDigests(ha, hb, primary.pageCount)
      const buf = new Uint8Array(256 * primary.pageSize)
      for (let i = 0; i < divergent.length; i += 256) {
        const idx = divergent.subarray(i, i + 256)
        const view = buf.subarray(0, idx.length * primary.pageSize)
        await primary.readPages(idx, view)
        await backup.writePages(idx, view)
      }
      const copied = performance.now()
      await backup.importDeviceState(await primary.exportDeviceState())
      await Promise.all([primary.resume(), backup.resume()])
      const resumed = performance.now()
      t.comment(
        `epoch ${epoch}: ${divergent.length}/${primary.pageCount} pages divergent; pause ${(resumed - paused).toFixed(0)} ms ` +
          `(hash ${(hashed - paused).toFixed(0)}, copy ${(copied - hashed).toFixed(0)}, ` +
          `device state ${(resumed - copied).toFixed(0)}; stream ${primary.lastExport?.streamBytes} bytes)`,
      )
      t.ok(divergent.length > 0, 'the replicas diverged before the sync')
      const backupPort = portOf(backup.process)
      const [da, db] = await Promise.all([redisDigest(a.port), redisDigest(backupPort)])
      t.equal(db, da, `epoch ${epoch}: the backup's dataset equals the primary's`)
      t.equal(await redis(backupPort, 'GET', `e${epoch}:499`), `${epoch}:499:${'d'.repeat(200)}`)
    }
    if (deviceStateFormat === 'migration') t.equal(standbys.taken, 3, 'one fresh standby per sync')
    else {
      t.equal(standbys.taken, 0, 'no standby: a snapshot loads in place')
      t.equal(backup.process.pid, backupPid, 'the backup kept its QEMU process')
    }
  })
