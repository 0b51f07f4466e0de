import { existsSync, rmSync, writeFileSync } from 'node:fs'
import { type AddressInfo, createServer } from 'node:net'
import t from 'tap'
import { GUEST_READY_MARKER, GUEST_REDIS_PORT } from '../../src/guest/init-script.js'
import { guestBoot } from '../../src/launch/guest-boot.js'
import { launch, type QemuExit, QemuExitedError } from '../../src/launch/qemu-process.js'
import { runCommand } from '../../src/launch/run-command.js'
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

t.test('boots to ready, stop/cont change the run state, stop() cleans up', async (t) => {
  const env = requireQemu(t)
  if (!env) return
  const vm = await bootTestGuest(t, env)
  t.match((await vm.qmp.queryStatus()).status, 'running')
  const stopEvent = vm.qmp.waitForEvent('STOP', { timeoutMs: 10_000 })
  await vm.qmp.stop()
  await stopEvent
  t.same(await vm.qmp.queryStatus(), { running: false, status: 'paused', singlestep: false })
  const resumeEvent = vm.qmp.waitForEvent('RESUME', { timeoutMs: 10_000 })
  await vm.qmp.cont()
  await resumeEvent
  t.equal((await vm.qmp.queryStatus()).status, 'running')
  const { pid } = vm
  const exit = await vm.stop({ removeRam: true })
  t.equal(exit.expected, true, 'exit requested by stop()')
  t.notOk(alive(pid), 'QEMU process is gone')
  t.notOk(existsSync(vm.paths.runDir), 'run dir (sockets, serial log) removed')
  t.notOk(existsSync(vm.paths.ramPath), 'RAM file removed on request')
})

t.test('SIGKILL is reported as an unexpected exit with the serial tail', async (t) => {
  const env = requireQemu(t)
  if (!env) return
  const vm = await bootTestGuest(t, env)
  const exitEvent = new Promise<QemuExit>((resolve) => vm.once('exit', resolve))
  vm.kill('SIGKILL')
  const exit = await exitEvent
  t.equal(exit.signal, 'SIGKILL')
  t.equal(exit.expected, false)
  t.match(exit.serialTail, GUEST_READY_MARKER, 'serial tail shows what the guest printed')
  t.equal(vm.running, false)
  await t.rejects(vm.qmp.queryStatus(), { name: 'QmpDisconnectedError' }, 'QMP reports the loss')
})

t.test('waitForSerial rejects when QEMU dies before the pattern appears', async (t) => {
  const env = requireQemu(t)
  if (!env) return
  const vm = await bootTestGuest(t, env, { waitReady: false })
  const wait = vm.waitForSerial(/never-printed-marker/, 60_000)
  setTimeout(() => vm.kill('SIGKILL'), 200)
  await t.rejects(wait, QemuExitedError)
})

t.test('stale sockets from a crashed run do not prevent a launch', async (t) => {
  const env = requireQemu(t)
  if (!env) return
  const name = uniqueVmName('stale')
  const first = await launch({
    name,
    boot: guestBoot(env.image),
    memoryMiB: 128,
    qemuBinary: env.qemuBinary,
    nic: { kind: 'user', redirectors: true },
  })
  t.teardown(() => first.stop({ removeRam: true }))
  first.kill('SIGKILL')
  await first.exited
  t.ok(existsSync(first.paths.qmpSocket), 'a crashed QEMU leaves its QMP socket behind')
  const redirector = first.paths.redirectors!.inIn.socketPath
  t.ok(existsSync(redirector), 'and its redirector sockets')
  // And a plain file where a socket should be (any debris).
  rmSync(first.paths.redirectors!.outOut.socketPath)
  writeFileSync(first.paths.redirectors!.outOut.socketPath, 'debris')
  const second = await launch({
    name,
    boot: guestBoot(env.image),
    memoryMiB: 128,
    qemuBinary: env.qemuBinary,
    nic: { kind: 'user', redirectors: true },
  })
  t.teardown(() => second.stop({ removeRam: true }))
  t.equal((await second.qmp.queryStatus()).running, true)
  await second.stop({ removeRam: true })
  t.notOk(existsSync(second.paths.runDir))
})

t.test('a bad command line is a QemuLaunchError carrying QEMU stderr', async (t) => {
  const env = requireQemu(t)
  if (!env) return
  const name = uniqueVmName('bad')
  // QEMU creates the RAM file before it fails on the kernel; a failed launch leaves it (it may be
  // a backup's RAM file in real use), so the test removes it.
  t.teardown(() => rmSync(`/dev/shm/plover-${name}.ram`, { force: true }))
  await t.rejects(
    launch({
      name,
      boot: { ...guestBoot(env.image), kernel: '/nonexistent/vmlinuz' },
      qemuBinary: env.qemuBinary,
    }),
    { name: 'QemuLaunchError', message: /nonexistent\/vmlinuz/ },
  )
})

t.test('a standby waits in inmigrate with the identical device set', async (t) => {
  const env = requireQemu(t)
  if (!env) return
  const { standbyConfig } = await import('../../src/launch/standby.js')
  const { buildQemuCommandLine } = await import('../../src/launch/command-line.js')
  const primary = {
    name: uniqueVmName('prim'),
    boot: guestBoot(env.image),
    memoryMiB: 128,
    qemuBinary: env.qemuBinary,
    nic: { kind: 'user' as const, redirectors: true },
  }
  const sb = standbyConfig(primary, {
    name: uniqueVmName('sb'),
    ramPath: `/dev/shm/${uniqueVmName('sbram')}`,
  })
  const strip = (args: readonly string[]) =>
    args.filter((a) => !a.includes(primary.name) && !a.includes(sb.name) && !a.includes('/dev/shm/'))
  const pArgs = strip(buildQemuCommandLine(primary).args)
  const sArgs = strip(buildQemuCommandLine(sb).args)
  t.same(sArgs.slice(0, pArgs.length), pArgs, 'same device arguments')
  t.same(sArgs.slice(pArgs.length), ['-incoming', 'defer'])
  const standby = await launch(sb)
  t.teardown(() => standby.stop({ removeRam: true }))
  t.equal((await standby.qmp.queryStatus()).status, 'inmigrate')
  const objects = await standby.qmp.execute<Array<{ name: string; type: string }>>('qom-list', {
    path: '/objects',
  })
  const filters = objects.filter((o) => o.type === 'child<filter-redirector>').map((o) => o.name)
  t.same(filters.sort(), ['f_in_in', 'f_in_out', 'f_out_in', 'f_out_out'], 'the four redirectors exist')
  for (const spec of Object.values(standby.paths.redirectors!))
    t.ok(existsSync(spec.socketPath), spec.socketPath)
})

t.test('user networking with hostfwd reaches redis in the guest', async (t) => {
  const env = requireQemu(t)
  if (!env) return
  const port = await freePort()
  await bootTestGuest(t, env, {
    nic: { kind: 'user', hostForwards: [{ hostPort: port, guestPort: GUEST_REDIS_PORT }] },
  })
  const r = await runCommand('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'PING'], {
    timeoutMs: 30_000,
  })
  t.equal(r.stdout.trim(), 'PONG')
})

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo
      s.close(() => resolve(port))
    })
  })
}
