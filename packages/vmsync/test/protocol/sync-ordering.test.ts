// The two ordering knobs of a sync: when the primary pauses (with the backup, or only once the
// backup's dirty set arrived) and when the backup acks (once the transfer is staged, or once it
// is applied). Each setting must leave the backup byte-equal; each must show its ordering.
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { SyncMode } from '../../src/protocol/messages.js'
import {
  firstDiff,
  makePair,
  mutateRandomPages,
  type Pair,
  rng,
  sameSnapshot,
  snapshot,
  syncBoth,
  tcpPair,
  waitEvent,
} from './fixtures/harness.js'

type PairOpts = Parameters<typeof makePair>[0]

/** A trusted pair on a TCP link, both sides then mutated differently. */
async function mutatedPair(t: Test, opts: PairOpts, seed = 7): Promise<{ pair: Pair }> {
  const pair = await makePair({ batchPages: 4, ...opts })
  const link = await tcpPair()
  pair.primary.attachLink(link.a)
  pair.backup.attachLink(link.b)
  await syncBoth(pair, 1)
  const rand = rng(seed)
  await mutateRandomPages(pair.pvm, rand, 24)
  await mutateRandomPages(pair.bvm, rand, 24)
  t.teardown(async () => {
    await link.close()
    await pair.close()
  })
  return { pair }
}

async function expectEqual(t: Test, pair: Pair, what: string) {
  const [a, b] = [await snapshot(pair.pvm), await snapshot(pair.bvm)]
  t.ok(sameSnapshot(a, b), `${what}: ${sameSnapshot(a, b) ? 'equal' : firstDiff(a, b)}`)
}

/** Where the primary's VM was when the (delayed) backup started its side of the sync. */
async function primaryStateWhileBackupLags(t: Test, pauseAt: 'with-backup' | 'after-backup-dirty') {
  const { pair } = await mutatedPair(t, { pauseAt })
  await pair.pvm.resume()
  await pair.bvm.resume()
  const marker = { epoch: 2, outputCount: 0 }
  const p = pair.primary.runSync(marker)
  await sleep(150) // the backup reaches the marker late (log lag)
  const stateWhileWaiting = pair.pvm.runState
  const b = pair.backup.runSync(marker)
  const [pr, br] = await Promise.all([p, b])
  await pair.pvm.pause()
  await pair.bvm.pause()
  t.ok(pr && br, 'both sides completed')
  await expectEqual(t, pair, `pauseAt ${pauseAt}`)
  return { stateWhileWaiting, report: pr! }
}

t.test(
  "pauseAt 'with-backup' (default): the primary pauses at once and scans while the backup catches up",
  async (t) => {
    const { stateWhileWaiting, report } = await primaryStateWhileBackupLags(t, 'with-backup')
    t.equal(stateWhileWaiting, 'paused')
    const steps = Object.keys(report.stepsMs)
    t.ok(
      steps.indexOf('collect') < steps.indexOf('waitDirty'),
      `collect before waitDirty (${steps.join(', ')})`,
    )
    t.ok(report.pauseMs >= 100, `the backup's lag is in the pause (${report.pauseMs.toFixed(0)} ms)`)
  },
)

t.test("pauseAt 'after-backup-dirty': the primary runs until the backup's dirty set arrives", async (t) => {
  const { stateWhileWaiting, report } = await primaryStateWhileBackupLags(t, 'after-backup-dirty')
  t.equal(stateWhileWaiting, 'running')
  const steps = Object.keys(report.stepsMs)
  t.ok(steps.indexOf('waitDirty') < steps.indexOf('pause'), `waitDirty before pause (${steps.join(', ')})`)
  t.ok(report.pauseMs < 100, `the backup's lag stays out of the pause (${report.pauseMs.toFixed(0)} ms)`)
})

/** Slows the backup's page writes so the ack's place relative to the apply shows. */
function slowWrites(pair: Pair, ms: number): { written: () => boolean } {
  const vm = pair.bvm
  const write = vm.writePages.bind(vm)
  let done = false
  vm.writePages = async (indices, src) => {
    await sleep(ms)
    await write(indices, src)
    done = true
  }
  return { written: () => done }
}

for (const ackAfter of ['staged', 'applied'] as const) {
  const name =
    ackAfter === 'staged'
      ? "ackAfter 'staged' (default): the primary completes while the backup still applies"
      : "ackAfter 'applied': the primary completes only after the backup applied"
  t.test(name, async (t) => {
    const { pair } = await mutatedPair(t, { ackAfter })
    const w = slowWrites(pair, 300)
    const marker = { epoch: 2, outputCount: 0 }
    const b = pair.backup.runSync(marker)
    const pr = await pair.primary.runSync(marker)
    t.ok(pr, 'the primary completed')
    if (ackAfter === 'staged') {
      t.equal(pr!.divergentPages > 0, true, 'pages were sent')
      t.notOk(w.written(), 'before the backup wrote them')
    } else t.ok(w.written(), 'after the backup wrote the pages')
    t.ok(await b, 'the backup completed the apply')
    await pair.pvm.pause()
    await pair.bvm.pause()
    await expectEqual(t, pair, 'after the apply')
  })
}

t.test(
  "ackAfter 'staged': an apply failing after the ack drops the link and the next sync is full",
  async (t) => {
    const { pair } = await mutatedPair(t, { ackAfter: 'staged' })
    const vm = pair.bvm
    const importState = vm.importDeviceState.bind(vm)
    vm.importDeviceState = async () => {
      vm.importDeviceState = importState // fails once
      throw new Error('injected: device state refused')
    }
    const unprotected = waitEvent(pair.guard, 'unprotected')
    const marker = { epoch: 2, outputCount: 0 }
    const failed = waitEvent(pair.backup, 'sync-failed')
    const b = pair.backup.runSync(marker)
    const pr = await pair.primary.runSync(marker)
    t.ok(pr, 'the primary saw the ack')
    t.equal(await b, undefined, 'the backup failed to apply')
    const [failure] = (await failed) as [{ reason: string }]
    t.match(failure.reason, /device state refused/)
    t.ok(pair.backup.needFull, 'the backup asks for a full sync next')
    const [reason] = (await unprotected) as [string]
    t.match(reason, /backup|link/i, `the primary unprotected its outputs (${reason})`)

    // A fresh link: the next sync is a full one and leaves the backup equal.
    await pair.pvm.pause()
    await pair.bvm.pause()
    const link = await tcpPair()
    t.teardown(link.close)
    pair.primary.attachLink(link.a)
    pair.backup.attachLink(link.b)
    const { p } = await syncBoth(pair, 3)
    t.equal(p?.mode, SyncMode.FullCompared)
    await expectEqual(t, pair, 'after the full sync')
  },
)
