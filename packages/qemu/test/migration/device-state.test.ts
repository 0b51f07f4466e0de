// Device-state transfer between real QEMUs running the redis guest: direct into a standby, relayed
// through Node as bytes, several cycles in a row, and a failing load that leaves the primary
// resumable. RAM is copied file to file (the sync protocol's job) before each transfer.
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { launch, type QemuProcess } from '../../src/launch/qemu-process.js'
import { standbyConfig } from '../../src/launch/standby.js'
import { exportDeviceState, importDeviceState, migrateToStandby } from '../../src/migration/device-state.js'
import { MigrationFailedError } from '../../src/migration/errors.js'
import { requireQemu } from '../../src/testing/require-qemu.js'
import { uniqueVmName } from '../../src/testing/unique-name.js'
import {
  bootRedisGuest,
  copyRam,
  freePort,
  redis,
  redisDigest,
  redisPipe,
  redisStandbyPool,
  withHostPort,
} from '../fixtures/redis-guest.js'

const MIB = 1024 * 1024

async function redisState(port: number, keys: string[]) {
  return {
    digest: await redisDigest(port),
    size: await redis(port, 'DBSIZE'),
    values: await Promise.all(keys.map((k) => redis(port, 'GET', k))),
  }
}

function standbyPool(t: { teardown(fn: () => unknown): void }, primary: QemuProcess, backupRam: string) {
  const standbys = redisStandbyPool(t, primary, { ramPath: backupRam, namePrefix: 'standby' })
  t.teardown(() => rmSync(backupRam, { force: true })) // after the pool closed
  return standbys
}

for (const mode of ['direct', 'relayed'] as const) {
  t.test(`${mode} transfer into fresh standbys keeps redis identical, three cycles`, async (t) => {
    const env = requireQemu(t)
    if (!env) return
    const { vm: primary, port } = await bootRedisGuest(t, env)
    const size = (primary.config.memoryMiB ?? 256) * MIB
    const backupRam = `/dev/shm/${uniqueVmName('backup')}.ram`
    const { pool, portOf } = standbyPool(t, primary, backupRam)
    pool.fill()
    const keys: string[] = []
    for (let cycle = 1; cycle <= 3; cycle++) {
      for (let i = 0; i < 5; i++) {
        const key = `c${cycle}k${i}`
        keys.push(key)
        await redis(port, 'SET', key, `value-${cycle}-${i}-${'x'.repeat(100 * i)}`)
      }
      await redisPipe(
        port,
        Array.from({ length: 2000 }, (_, i) => [
          'SET',
          `pop${cycle}:${i}`,
          `${cycle}-${i}-${'v'.repeat(64)}`,
        ]),
      )
      const standby = await pool.take()
      t.teardown(() => standby.stop())
      await primary.qmp.stop()
      copyRam(primary.paths.ramPath, backupRam, size)
      let stats: { durationMs: number; streamBytes: number }
      if (mode === 'direct') {
        stats = await migrateToStandby(primary.qmp, standby.qmp, {
          socketPath: join(standby.paths.runDir, 'mig.sock'),
        })
      } else {
        const exported = await exportDeviceState(primary.qmp, {
          socketPath: join(primary.paths.runDir, 'export.sock'),
        })
        t.equal(exported.stats.streamBytes, exported.state.byteLength)
        const imported = await importDeviceState(standby.qmp, exported.state, {
          socketPath: join(standby.paths.runDir, 'incoming.sock'),
        })
        stats = {
          durationMs: exported.stats.durationMs + imported.durationMs,
          streamBytes: exported.state.byteLength,
        }
      }
      t.comment(
        `cycle ${cycle}: ${mode} transfer ${stats.durationMs.toFixed(1)} ms, stream ${stats.streamBytes} bytes`,
      )
      t.ok(stats.streamBytes > 0 && stats.streamBytes < 64 * MIB, 'the stream leaves the shared RAM out')
      t.equal((await standby.qmp.queryStatus()).status, 'paused', 'the standby ends paused')
      t.equal((await primary.qmp.queryStatus()).status, 'postmigrate', 'the primary ends postmigrate')
      await standby.qmp.cont()
      await primary.qmp.cont()
      const [a, b] = await Promise.all([redisState(port, keys), redisState(portOf(standby), keys)])
      t.same(b, a, `cycle ${cycle}: digest, size and values identical on the standby`)
      t.equal(a.size, String(keys.length + 2000 * cycle), 'every key is there')
      await standby.stop() // the backup RAM file stays for the next standby
    }
    t.equal(pool.taken, 3)
  })
}

t.test('a failed load leaves the primary resumable and says why', async (t) => {
  const env = requireQemu(t)
  if (!env) return
  const { vm: primary, port } = await bootRedisGuest(t, env)
  const backupRam = `/dev/shm/${uniqueVmName('backup')}.ram`
  t.teardown(() => rmSync(backupRam, { force: true }))
  // A device mismatch: different RAM size, so the stream cannot load.
  const config = withHostPort(
    standbyConfig(
      { ...primary.config, memoryMiB: (primary.config.memoryMiB ?? 256) / 2 },
      { name: uniqueVmName('bad'), ramPath: backupRam },
    ),
    await freePort(),
  )
  const standby = await launch(config)
  t.teardown(() => standby.stop())
  await primary.qmp.stop()
  const err = await migrateToStandby(primary.qmp, standby.qmp, {
    socketPath: join(standby.paths.runDir, 'mig.sock'),
    timeoutMs: 20_000,
  }).catch((e: unknown) => e)
  t.type(err, MigrationFailedError)
  t.comment(String(err))
  t.equal((err as MigrationFailedError).side, 'destination', 'the load failed on the standby')
  t.ok((err as MigrationFailedError).reason.length > 0, 'the error carries a reason')
  t.not((await primary.qmp.queryStatus()).status, 'running', 'the primary is still stopped')
  await primary.qmp.cont()
  t.equal((await primary.qmp.queryStatus()).status, 'running', 'cont resumed it')
  t.equal(await redis(port, 'PING'), 'PONG')
})
