// Device state as a qcow2 snapshot between real QEMUs running the redis guest: saved on A, loaded
// into B's own running (paused) process after a RAM copy, three cycles, B continuing as A; the
// stream inside the image is what a migration export of A gives; a malformed or foreign image is
// refused before QEMU touches B, which stays usable.
import t from 'tap'
import { compareDeviceState } from '../../src/migration/compare-state.js'
import { exportDeviceState } from '../../src/migration/device-state.js'
import { MigrationFailedError } from '../../src/migration/errors.js'
import { SnapshotImageError, snapshotStream } from '../../src/migration/snapshot-image.js'
import { isSnapshotState, loadSnapshotState, saveSnapshotState } from '../../src/migration/snapshot-state.js'
import { requireQemu } from '../../src/testing/require-qemu.js'
import { bootRedisGuest, copyRam, redis, redisDigest, redisPipe } from '../fixtures/redis-guest.js'

const MIB = 1024 * 1024

t.test('a snapshot saved on A loads into B in place; B continues as A, three cycles', async (t) => {
  const env = requireQemu(t)
  if (!env) return
  const a = await bootRedisGuest(t, env, { memoryMiB: 128 })
  const b = await bootRedisGuest(t, env, { memoryMiB: 128 })
  const bPid = b.vm.pid
  for (let cycle = 1; cycle <= 3; cycle++) {
    await redisPipe(
      a.port,
      Array.from({ length: 300 }, (_, i) => ['SET', `c${cycle}:${i}`, `${cycle}-${i}`]),
    )
    await Promise.all([a.vm.qmp.stop(), b.vm.qmp.stop()])
    const { state, stats } = await saveSnapshotState(a.vm.qmp, {
      path: `${a.vm.paths.runDir}/s${cycle}.qcow2`,
    })
    t.ok(
      isSnapshotState(state),
      `cycle ${cycle}: a qcow2 image (${state.byteLength} bytes, ${stats.durationMs.toFixed(1)} ms)`,
    )
    t.equal((await a.vm.qmp.queryStatus()).status, 'paused', 'A stays paused after the save')
    copyRam(a.vm.paths.ramPath, b.vm.paths.ramPath, 128 * MIB)
    const loaded = await loadSnapshotState(b.vm.qmp, state, { path: `${b.vm.paths.runDir}/l${cycle}.qcow2` })
    t.comment(`cycle ${cycle}: load ${loaded.durationMs.toFixed(1)} ms`)
    t.equal((await b.vm.qmp.queryStatus()).status, 'paused', 'B is paused after the load')
    if (cycle === 1) {
      // The stream inside the image is A's device state, as a migration export of A shows.
      const inside = snapshotStream(state)
      t.equal(inside.subarray(0, 4).toString('latin1'), 'QEVM', 'the vmstate is a migration stream')
      const { state: stream } = await exportDeviceState(a.vm.qmp, {
        socketPath: `${a.vm.paths.runDir}/cmp.sock`,
      })
      const diff = compareDeviceState(inside, stream)
      t.ok(diff.same, `same state as a migration export of A, apart from the RTC (${JSON.stringify(diff)})`)
    }
    await Promise.all([a.vm.qmp.cont(), b.vm.qmp.cont()])
    t.equal(b.vm.pid, bPid, 'B is still the same QEMU process')
    t.equal(await redisDigest(b.port), await redisDigest(a.port), `cycle ${cycle}: B's dataset equals A's`)
    t.equal(await redis(b.port, 'GET', `c${cycle}:299`), `${cycle}-299`)
  }
  // Both go on independently afterwards.
  await redis(b.port, 'SET', 'only-b', '1')
  t.equal(await redis(b.port, 'GET', 'only-b'), '1')
  t.equal(await redis(a.port, 'EXISTS', 'only-b'), '0')
})

t.test('malformed or foreign images are refused before QEMU resets the VM', async (t) => {
  const env = requireQemu(t)
  if (!env) return
  const a = await bootRedisGuest(t, env, { memoryMiB: 128 })
  await redis(a.port, 'SET', 'kept', 'yes')
  await a.vm.qmp.stop()
  const { state } = await saveSnapshotState(a.vm.qmp, { path: `${a.vm.paths.runDir}/s.qcow2` })
  const { state: stream } = await exportDeviceState(a.vm.qmp, { socketPath: `${a.vm.paths.runDir}/m.sock` })
  const truncated = state.subarray(0, 300 * 1024)
  const badL1 = Buffer.from(state)
  badL1.writeBigUInt64BE(BigInt(state.byteLength) * 4n, Number(badL1.readBigUInt64BE(64))) // snapshot's L1 offset
  const cases: [string, Uint8Array, RegExp][] = [
    ['a migration stream', stream, /no qcow2 magic/],
    ['an image cut short', truncated, /malformed snapshot image: .*beyond the end/],
    ['an image whose snapshot points outside it', badL1, /malformed snapshot image: L1 table beyond the end/],
  ]
  for (const [what, bytes, re] of cases) {
    t.throws(() => snapshotStream(bytes), SnapshotImageError, `${what}: the parser refuses it`)
    const err = await loadSnapshotState(a.vm.qmp, bytes, { path: `${a.vm.paths.runDir}/bad.qcow2` }).catch(
      (e) => e,
    )
    t.type(err, MigrationFailedError, `${what}: load refused`)
    t.match((err as Error).message, re)
  }
  await a.vm.qmp.cont()
  t.equal(await redis(a.port, 'GET', 'kept'), 'yes', 'the VM was never reset: its data is intact')
})
