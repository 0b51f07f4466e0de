import t from 'tap'
import { QmpClient } from '../../src/qmp/client.js'
import { QmpError, QmpTimeoutError } from '../../src/qmp/errors.js'
import { bootTestGuest } from '../../src/testing/boot-test-guest.js'
import { requireQemu } from '../../src/testing/require-qemu.js'

t.test('QMP against a real QEMU', async (t) => {
  const env = requireQemu(t)
  if (!env) return
  // No need to wait for the guest: QMP works from the first instant.
  const vm = await bootTestGuest(t, env, { waitReady: false, memoryMiB: 128 })
  const qmp = vm.qmp
  t.type(qmp.greeting.version, 'object', 'greeting carries the version')

  await t.test('stop / cont / query-status', async (t) => {
    await qmp.stop()
    t.same(await qmp.queryStatus(), { running: false, status: 'paused', singlestep: false })
    await qmp.cont()
    t.equal((await qmp.queryStatus()).running, true)
  })

  await t.test('unknown command → QmpError CommandNotFound', async (t) => {
    const err = await qmp.execute('no-such-command').catch((e: unknown) => e)
    t.type(err, QmpError)
    t.equal((err as QmpError).class, 'CommandNotFound')
    t.match((err as QmpError).desc, /no-such-command/)
  })

  await t.test('bad arguments → QmpError GenericError', async (t) => {
    const err = await qmp.objectDel('no-such-object').catch((e: unknown) => e)
    t.type(err, QmpError)
    t.equal((err as QmpError).class, 'GenericError')
  })

  await t.test('concurrent commands are matched by id', async (t) => {
    const results = await Promise.all([
      qmp.queryStatus(),
      qmp.execute('query-name'),
      qmp.queryMigrate(),
      qmp.queryStatus(),
    ])
    t.equal(results[0].status, 'running')
    t.same(results[1], { name: vm.name })
    t.type(results[2], 'object')
    t.equal(results[3].running, true)
  })

  await t.test('a second client gets no greeting: typed timeout, first client unaffected', async (t) => {
    await t.rejects(QmpClient.connect(vm.paths.qmpSocket, { connectTimeoutMs: 500 }), QmpTimeoutError)
    t.equal((await qmp.queryStatus()).running, true)
  })

  await t.test('quit → disconnected event, pending commands rejected', async (t) => {
    const gone = new Promise((resolve) => qmp.once('disconnected', resolve))
    await qmp.quit()
    t.match(await gone, { name: 'QmpDisconnectedError', byClient: false })
    await t.rejects(qmp.queryStatus(), { name: 'QmpDisconnectedError' })
  })
})
