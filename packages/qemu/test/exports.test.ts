// The main entry is the runtime API; test helpers live behind @plover/qemu/testing.
import { readFileSync } from 'node:fs'
import t from 'tap'
import * as main from '../src/index.js'
import * as testing from '../src/testing/index.js'

t.test('main entry: runtime API only', async (t) => {
  t.notOk('PACKAGE' in main, 'no leftover PACKAGE constant')
  for (const name of ['bootTestGuest', 'requireQemu', 'FakeQmpServer', 'uniqueVmName', 'REQUIRE_QEMU_ENV'])
    t.notOk(name in main, `${name} is not in the main entry`)
  for (const name of ['launch', 'QmpClient', 'QemuVm', 'GuestMemory', 'FrameChannel', 'TestNetwork'])
    t.ok(name in main, `${name} is in the main entry`)
})

t.test('@plover/qemu/testing: the test helpers', async (t) => {
  for (const name of [
    'bootTestGuest',
    'TEST_BOOT_TIMEOUT_MS',
    'FakeQmpServer',
    'requireQemu',
    'qemuUnavailableReason',
    'REQUIRE_QEMU_ENV',
    'uniqueVmName',
  ])
    t.ok(name in testing, name)
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
  t.same(pkg.exports['./testing'], { types: './dist/testing/index.d.ts', import: './dist/testing/index.js' })
})
