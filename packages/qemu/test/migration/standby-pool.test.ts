// The standby pool keeps the next standby QEMU ready, replaces one that died, and stops spares on
// close (no orphan QEMU); armed, it hands out standbys already listening for their import.
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs'
import t from 'tap'
import { guestBoot } from '../../src/launch/guest-boot.js'
import type { QemuProcess } from '../../src/launch/qemu-process.js'
import type { VmConfig } from '../../src/launch/vm-config.js'
import { exportDeviceState, importDeviceState } from '../../src/migration/device-state.js'
import { incomingSocketPath, StandbyPool, standbyLauncher } from '../../src/migration/standby-pool.js'
import { bootTestGuest } from '../../src/testing/boot-test-guest.js'
import { requireQemu } from '../../src/testing/require-qemu.js'
import { uniqueVmName } from '../../src/testing/unique-name.js'

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

t.test('a ready standby is handed out at once and replaced in the background', async (t) => {
  const env = requireQemu(t)
  if (!env) return
  const name = uniqueVmName('pool')
  const base: VmConfig = {
    name,
    boot: guestBoot(env.image),
    memoryMiB: 128,
    nic: { kind: 'none' },
    qemuBinary: env.qemuBinary,
  }
  const ramPath = `/dev/shm/plover-${name}-backup.ram`
  const launchStandby = standbyLauncher({ base, ramPath, namePrefix: name })
  const launched: QemuProcess[] = []
  const pool = new StandbyPool({
    spawn: async (seq) => {
      const s = await launchStandby(seq)
      launched.push(s)
      return s
    },
  })
  const taken: QemuProcess[] = []
  t.teardown(async () => {
    await pool.close()
    for (const s of taken) await s.stop()
    rmSync(ramPath, { force: true })
  })
  const spawnTimes: number[] = []
  const nextSpawn = () =>
    new Promise<QemuProcess>((resolve) =>
      pool.once('spawned', (s, ms) => {
        spawnTimes.push(ms)
        resolve(s)
      }),
    )
  let spawned = nextSpawn()
  pool.fill()
  const first = await spawned
  spawned = nextSpawn()
  const started = performance.now()
  const s1 = await pool.take()
  const takeMs = performance.now() - started
  taken.push(s1)
  t.equal(s1, first, 'take() returns the standby spawned in advance')
  t.ok(takeMs < spawnTimes[0], `take took ${takeMs.toFixed(1)} ms, spawning ${spawnTimes[0].toFixed(1)} ms`)
  t.equal((await s1.qmp.queryStatus()).status, 'inmigrate', 'it waits for an incoming migration')
  t.equal(s1.paths.ramPath, ramPath, 'it maps the backup RAM file')

  const next = await spawned
  t.not(next.pid, s1.pid, 'the next standby was started right after the take')
  next.kill('SIGKILL') // a spare that dies before use is replaced
  await next.exited
  const s2 = await pool.take()
  taken.push(s2)
  t.ok(s2.running && s2.pid !== next.pid, 'take() skipped the dead spare')
  t.notOk(existsSync(next.paths.runDir), 'and removed its run dir')
  t.equal(pool.taken, 2)

  await pool.close()
  const spares = launched.filter((s) => !taken.includes(s) && s !== next)
  t.ok(spares.length >= 1, `${spares.length} spare standby was started after the last take`)
  t.same(
    spares.filter((s) => alive(s.pid)).map((s) => s.pid),
    [],
    'close() stopped every spare standby',
  )
  await t.rejects(pool.take(), /closed/)
  t.comment(`standby spawn to QMP-ready: ${spawnTimes.map((ms) => ms.toFixed(0)).join(', ')} ms`)
})

t.test('armed: standbys listen for their import before take(); the import skips the QMP setup', async (t) => {
  const env = requireQemu(t)
  if (!env) return
  // The source of the device state: a booted guest (an early-boot state does not load: QEMU
  // refuses kvm-tpr-opt's section before the guest ran its option ROMs).
  const source = await bootTestGuest(t, env, { memoryMiB: 128 })
  const name = uniqueVmName('armed')
  const ramPath = `/dev/shm/plover-${name}-backup.ram`
  const pool = new StandbyPool({
    spawn: standbyLauncher({ base: source.config, ramPath, namePrefix: name }),
    size: 2,
    armIncoming: true,
  })
  const plain = new StandbyPool({
    spawn: standbyLauncher({ base: source.config, ramPath, namePrefix: `${name}p` }),
  })
  const taken: QemuProcess[] = []
  t.teardown(async () => {
    await pool.close()
    await plain.close()
    for (const s of taken) await s.stop()
    rmSync(ramPath, { force: true })
  })
  const standby = await pool.take()
  taken.push(standby)
  t.ok(pool.isArmed(standby))
  const socket = incomingSocketPath(standby)
  t.ok(existsSync(socket), 'QEMU listens on the socket already')
  const pending = (await standby.qmp.queryMigrate()) as { 'socket-address'?: Array<{ path?: string }> }
  t.same(
    pending['socket-address']?.map((a) => a.path),
    [socket],
    'query-migrate shows the pending incoming migration on that socket',
  )

  const unarmed = await plain.take()
  taken.push(unarmed)
  t.notOk(plain.isArmed(unarmed), 'a pool without armIncoming arms nothing')
  t.notOk(pool.isArmed(unarmed), 'nor does another pool vouch for it')

  const { state } = await exportDeviceState(source.qmp, { socketPath: `${source.paths.runDir}/export.sock` })
  // The backup's RAM must hold the source's (the device state points into it, e.g. option ROMs):
  // written in place, as a sync does, never truncated under the standby's mapping.
  const fd = openSync(ramPath, 'r+')
  writeSync(fd, readFileSync(source.paths.ramPath), 0, undefined, 0)
  closeSync(fd)
  await importDeviceState(standby.qmp, state, { socketPath: socket, armed: true })
  t.equal((await standby.qmp.queryStatus()).status, 'paused', 'the armed standby loaded the state')
})
