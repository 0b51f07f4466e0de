// VM-level failures during a sync (rather than link failures): the primary's VM dies while pages
// are being read, or the backup's VM refuses the final write; and what an untrusted backup's VM
// holds when its full sync breaks off midway.
import t, { type Test } from 'tap'
import { SyncAbortedError } from '../../src/protocol/errors.js'
import { SyncMessageType, SyncMode } from '../../src/protocol/messages.js'
import {
  FaultyLink,
  firstDiff,
  makePair,
  mutateRandomPages,
  type Pair,
  preparedPair,
  rng,
  sameSnapshot,
  snapshot,
  syncBoth,
  tcpPair,
  waitEvent,
} from './fixtures/harness.js'

/**
 * A prepared pair on a fresh TCP link, `inject` applied to it, then epoch 2 on both sides. Returns
 * both results, the backup's state before the epoch and each side's first failure reason.
 */
async function epochWithFault(t: Test, seed: number, inject: (pair: Pair) => void) {
  const pair = await preparedPair(seed)
  t.teardown(() => pair.close())
  const oldB = await snapshot(pair.bvm)
  const tcp = await tcpPair()
  t.teardown(() => tcp.close())
  inject(pair)
  pair.primary.attachLink(tcp.a)
  pair.backup.attachLink(tcp.b)
  const primaryFailure = new Promise<Error>((r) => pair.primary.once('sync-failed', (f) => r(f.error)))
  const backupFailure = new Promise<Error>((r) => pair.backup.once('sync-failed', (f) => r(f.error)))
  const marker = { epoch: 2, outputCount: 0 }
  const [p, b] = await Promise.all([pair.primary.runSync(marker), pair.backup.runSync(marker)])
  return { pair, oldB, p, b, primaryFailure, backupFailure }
}

/** The backup, paused again, still holds the state it had before the failed epoch. */
async function backupUnchanged(t: Test, pair: Pair, oldB: Awaited<ReturnType<typeof snapshot>>) {
  await pair.bvm.pause()
  t.ok(sameSnapshot(await snapshot(pair.bvm), oldB), 'backup unchanged')
}

t.test(
  'primary VM crashes while taking its cut: Abort reaches the backup, which keeps its state',
  async (t) => {
    const { pair, oldB, p, b, backupFailure } = await epochWithFault(t, 31, (pair) => {
      // The paused primary copies the union pages before it resumes: die right there.
      const realRead = pair.pvm.readPages.bind(pair.pvm)
      pair.pvm.readPages = async (indices, dst) => {
        pair.pvm.crash('injected: primary VM died')
        return realRead(indices, dst)
      }
    })
    t.notOk(p, 'primary sync failed')
    t.notOk(b, 'backup sync failed')
    const err = await backupFailure
    t.ok(
      err instanceof SyncAbortedError || err.name === 'LinkClosedError',
      `backup saw ${err.name}: ${err.message}`,
    )
    await backupUnchanged(t, pair, oldB)
    t.equal(pair.backup.needFull, false, 'still trusted: its pre-sync state is consistent')
  },
)

t.test('primary VM dies after its cut: the backup still receives and applies that cut', async (t) => {
  const pair = await preparedPair(33)
  t.teardown(() => pair.close())
  const tcp = await tcpPair()
  t.teardown(() => tcp.close())
  let cut: Awaited<ReturnType<typeof snapshot>> | undefined
  const realResume = pair.pvm.resume.bind(pair.pvm)
  pair.pvm.resume = async () => {
    cut = await snapshot(pair.pvm) // the state the backup must end up with
    await realResume()
  }
  let batches = 0
  pair.primary.attachLink(
    new FaultyLink(tcp.a, (m) => {
      if (m.type === SyncMessageType.Pages && ++batches === 2) pair.pvm.crash('injected: primary VM died')
      return 'pass'
    }),
  )
  pair.backup.attachLink(tcp.b)
  const marker = { epoch: 2, outputCount: 0 }
  const [p, b] = await Promise.all([pair.primary.runSync(marker), pair.backup.runSync(marker)])
  t.ok(batches >= 2, 'the VM died mid-transfer')
  t.ok(p, 'the primary completed the transfer from its paused copies')
  t.ok(b, 'the backup applied it')
  await pair.bvm.pause()
  t.ok(cut && sameSnapshot(await snapshot(pair.bvm), cut), 'backup equals the primary at its cut')
})

for (const ackAfter of ['staged', 'applied'] as const) {
  t.test(
    `backup VM refuses the write (ack ${ackAfter}): backup marked untrusted (next sync is full)`,
    async (t) => {
      const pair = await preparedPair(32, { ackAfter })
      t.teardown(() => pair.close())
      const tcp = await tcpPair()
      t.teardown(() => tcp.close())
      pair.primary.attachLink(tcp.a)
      pair.backup.attachLink(tcp.b)
      const realWrite = pair.bvm.writePages.bind(pair.bvm)
      pair.bvm.writePages = async () => {
        throw new Error('injected: disk full')
      }
      const trust: boolean[] = []
      pair.backup.on('trust', (x) => trust.push(x))
      const r = await syncBoth(pair, 2)
      t.notOk(r.b, 'backup sync failed')
      if (ackAfter === 'applied') t.notOk(r.p, 'primary got no Ack')
      else {
        // Acked once staged: the failure shows as the link dropping right after.
        t.ok(r.p, 'primary got the Ack before the apply failed')
        if (pair.primary.hasBackup) await waitEvent(pair.primary, 'link-down')
      }
      t.notOk(pair.primary.hasBackup, 'the link is down')
      // Held outputs go out only once the primary's Unprotect record commits.
      if (pair.guard.isProtected) await waitEvent(pair.guard, 'unprotected')
      t.notOk(pair.guard.isProtected, 'outputs are unprotected')
      t.equal(pair.backup.needFull, true, 'backup untrusted')
      t.same(trust, [false])

      pair.bvm.writePages = realWrite
      const again = await tcpPair()
      t.teardown(() => again.close())
      pair.primary.attachLink(again.a)
      pair.backup.attachLink(again.b)
      const full = await syncBoth(pair, 3)
      t.equal(full.p?.mode, SyncMode.FullCompared, 'recovery is a full sync')
      t.equal(full.p?.unionPages, pair.pvm.pageCount, 'over every page')
      t.ok(sameSnapshot(await snapshot(pair.pvm), await snapshot(pair.bvm)), 'equal again')
    },
  )
}

t.test(
  "the primary's device-state export starts with the pause, beside its RAM scan; the VM resumes only once it settled",
  async (t) => {
    const events: string[] = []
    const { pair, oldB, p, b, primaryFailure } = await epochWithFault(t, 33, (pair) => {
      // The scan fails at once while the export is still running: the failure path must wait for
      // the export before it resumes the VM (QEMU is still saving the state then).
      pair.pvm.dirtyTracker.collect = async () => {
        events.push('collect started')
        throw new Error('injected: scan failed')
      }
      const realExport = pair.pvm.exportDeviceState.bind(pair.pvm)
      pair.pvm.exportDeviceState = async () => {
        events.push('export started')
        await new Promise((r) => setTimeout(r, 150))
        events.push('export done')
        return realExport()
      }
      const realResume = pair.pvm.resume.bind(pair.pvm)
      pair.pvm.resume = async () => {
        events.push('resume')
        return realResume()
      }
    })
    t.notOk(p, 'primary sync failed')
    t.notOk(b, 'backup sync failed')
    t.match((await primaryFailure).message, /injected: scan failed/)
    t.same(
      events.slice(0, 2),
      ['export started', 'collect started'],
      'the export starts first, right after the pause',
    )
    t.same(events.slice(2), ['export done', 'resume'], 'resumed only after the export settled')
    t.equal(pair.pvm.runState, 'running', 'the primary runs again')
    await backupUnchanged(t, pair, oldB)
  },
)

t.test(
  'a failed device-state export fails the sync; the primary resumes, the backup keeps its state',
  async (t) => {
    const { pair, oldB, p, b, primaryFailure } = await epochWithFault(t, 34, (pair) => {
      pair.pvm.exportDeviceState = async () => {
        throw new Error('injected: export refused')
      }
    })
    t.notOk(p, 'primary sync failed')
    t.notOk(b, 'backup sync failed')
    t.match((await primaryFailure).message, /injected: export refused/)
    t.equal(pair.pvm.runState, 'running', 'the primary runs again')
    await backupUnchanged(t, pair, oldB)
  },
)

t.test(
  'a full sync writes through to the untrusted backup; if the primary dies mid-transfer, the backup stays untrusted and the next full sync completes it',
  async (t) => {
    const pair = await makePair({ batchPages: 8 })
    t.teardown(() => pair.close())
    await mutateRandomPages(pair.pvm, rng(21), 64)
    const before = await snapshot(pair.bvm)
    const first = await tcpPair()
    t.teardown(() => first.close())
    // The primary dies right after its third page batch.
    pair.primary.attachLink(
      new FaultyLink(first.a, (m, sent) =>
        m.type === SyncMessageType.Pages && sent.filter((x) => x.type === SyncMessageType.Pages).length === 2
          ? 'close-after'
          : 'pass',
      ),
    )
    pair.backup.attachLink(first.b)
    const trust: boolean[] = []
    pair.backup.on('trust', (x) => trust.push(x))
    const r = await syncBoth(pair, 1)
    t.notOk(r.b, 'the backup side failed')
    t.equal(pair.backup.needFull, true, 'the backup is still untrusted')
    t.same(trust, [], 'and never was trusted in between')
    const partial = await snapshot(pair.bvm)
    t.notOk(partial.memory.equals(before.memory), 'the batches that arrived were written through, not staged')

    const again = await tcpPair()
    t.teardown(() => again.close())
    pair.primary.attachLink(again.a)
    pair.backup.attachLink(again.b)
    const full = await syncBoth(pair, 2)
    t.equal(full.p?.mode, SyncMode.FullCompared, 'the next sync is full again')
    t.same(trust, [true], 'trusted once it completed')
    const after = { p: await snapshot(pair.pvm), b: await snapshot(pair.bvm) }
    t.ok(sameSnapshot(after.p, after.b), `equal (${firstDiff(after.p, after.b)})`)
  },
)
