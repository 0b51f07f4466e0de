// stop() is idempotent, but a later call still gets what it asks for: the first call's options
// must not swallow a later removeRam (tests and QemuVm.close stop a process that a swap or a
// failure path already stopped, and rely on the RAM file going away).
import { existsSync } from 'node:fs'
import t from 'tap'
import { guestBoot } from '../../src/launch/guest-boot.js'
import { launch } from '../../src/launch/qemu-process.js'
import { requireQemu } from '../../src/testing/require-qemu.js'
import { uniqueVmName } from '../../src/testing/unique-name.js'

for (const order of ['after', 'concurrently'] as const) {
  t.test(`stop({ removeRam: true }) ${order} a plain stop() removes the RAM file`, async (t) => {
    const env = requireQemu(t)
    if (!env) return
    // A process waiting for an incoming migration: QEMU with its RAM file, no guest boot needed.
    const vm = await launch({
      name: uniqueVmName('stop'),
      boot: guestBoot(env.image, {}),
      memoryMiB: 64,
      incoming: 'defer',
      qemuBinary: env.qemuBinary,
    })
    t.teardown(() => vm.stop({ removeRam: true }))
    t.ok(existsSync(vm.paths.ramPath), 'QEMU created the RAM file')
    let second: ReturnType<typeof vm.stop>
    if (order === 'after') {
      await vm.stop()
      t.ok(existsSync(vm.paths.ramPath), 'a plain stop() keeps the RAM file')
      second = vm.stop({ removeRam: true })
    } else {
      const first = vm.stop()
      second = vm.stop({ removeRam: true })
      await first
    }
    const exit = await second
    t.equal(exit.expected, true, 'the same expected exit')
    t.notOk(existsSync(vm.paths.ramPath), 'the later removeRam was honoured')
    t.notOk(existsSync(vm.paths.runDir), 'run dir removed')
  })
}
