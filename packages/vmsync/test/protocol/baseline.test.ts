// Dirty baselines: an incremental sync is correct only if the primary's and the backup's dirty
// trackers date from the same common state. A page changed on one side only before that side's
// baseline moved on (here: the primary synced another backup in between) is in neither dirty set,
// so the primary must send everything. A lost Ack, on the other hand, keeps incremental syncs, and
// so does a transfer the backup never applied (the primary keeps the dirty sets of its own cuts).
import t from 'tap'
import { createMemoryLinkPair } from '../../src/link/memory-link.js'
import { BackupSync } from '../../src/protocol/backup-sync.js'
import { SyncMessageType, SyncMode } from '../../src/protocol/messages.js'
import { SimulatedVm } from '../../src/simulated/index.js'
import {
  FaultyLink,
  firstDiff,
  makePair,
  mutateRandomPages,
  rng,
  sameSnapshot,
  snapshot,
  syncBoth,
  syncHasher,
} from './fixtures/harness.js'

t.test(
  'a backup whose baseline predates the primary’s last sync (with another backup) gets everything',
  async (t) => {
    const pair = await makePair({ trusted: true, pageCount: 128 })
    const cvm = new SimulatedVm({ pageCount: 128, deterministic: true })
    t.teardown(async () => {
      await pair.close()
      await cvm.close()
    })
    const other = new BackupSync({
      vm: cvm,
      tracker: cvm.dirtyTracker,
      hasher: syncHasher,
      quietMaxMs: 0,
      batchPages: 8,
    })
    const rand = rng(7)

    const [a1, b1] = createMemoryLinkPair()
    pair.primary.attachLink(a1)
    pair.backup.attachLink(b1)
    await mutateRandomPages(pair.pvm, rand, 10)
    await mutateRandomPages(pair.bvm, rand, 10)
    const first = await syncBoth(pair, 1)
    t.equal(first.p?.mode, SyncMode.Vsmr, 'B synced incrementally')
    t.ok(sameSnapshot(await snapshot(pair.pvm), await snapshot(pair.bvm)), 'B equals A')

    // A-only changes (nondeterminism: B, executing the same inputs, did not touch these pages).
    await mutateRandomPages(pair.pvm, rand, 6)
    // A syncs another backup C: A's dirty baseline moves on, B's does not.
    pair.primary.detachLink()
    const [a2, c2] = createMemoryLinkPair()
    pair.primary.attachLink(a2)
    other.attachLink(c2)
    const marker = { epoch: 2, outputCount: 0 }
    const [p2] = await Promise.all([pair.primary.runSync(marker), other.runSync(marker)])
    t.equal(p2?.mode, SyncMode.FullCompared, 'C (new) got a full sync')
    await pair.pvm.pause()

    // B comes back. Neither dirty set has the A-only pages any more.
    pair.primary.detachLink()
    const [a3, b3] = createMemoryLinkPair()
    pair.primary.attachLink(a3)
    pair.backup.attachLink(b3)
    t.equal(pair.backup.needFull, false, 'B itself is trusted')
    const third = await syncBoth(pair, 3)
    t.equal(third.p?.mode, SyncMode.FullCompared, 'its baseline is not the primary’s: full sync')
    const steps = Object.keys(third.p?.stepsMs ?? {})
    t.ok(
      steps.includes('waitHashes') && steps.indexOf('waitHashes') < steps.indexOf('copyPages'),
      `a trusted backup: the paused primary waits for its hashes, then copies only what differs (${steps.join(' ')})`,
    )
    const ps = await snapshot(pair.pvm)
    const bs = await snapshot(pair.bvm)
    t.ok(sameSnapshot(ps, bs), `B equals A again (${firstDiff(ps, bs)})`)
    t.equal(pair.backup.baselineId, pair.primary.baselineId, 'both now share the new baseline')
    t.not(pair.primary.baselineId, 0)
  },
)

t.test(
  'a lost Ack keeps the next sync incremental (the backup applied a transfer the primary sent)',
  async (t) => {
    const pair = await makePair({ trusted: true, pageCount: 128 })
    t.teardown(() => pair.close())
    const rand = rng(9)
    const [a1, b1] = createMemoryLinkPair()
    pair.primary.attachLink(a1)
    // The backup's Ack never leaves: it applies, then its link dies.
    pair.backup.attachLink(
      new FaultyLink(b1, (m) => (m.type === SyncMessageType.Ack ? 'close-before' : 'pass')),
    )
    await mutateRandomPages(pair.pvm, rand, 8)
    await mutateRandomPages(pair.bvm, rand, 8)
    const lost = await syncBoth(pair, 1)
    t.notOk(lost.p, 'the primary saw the sync fail')
    t.ok(lost.b, 'the backup applied it')
    t.equal(pair.backup.baselineId, pair.primary.baselineId, 'both at the cut of that transfer')

    const [a2, b2] = createMemoryLinkPair()
    pair.primary.attachLink(a2)
    pair.backup.attachLink(b2)
    await mutateRandomPages(pair.pvm, rand, 4)
    const next = await syncBoth(pair, 2)
    t.equal(next.p?.mode, SyncMode.Vsmr, 'still incremental: the primary sent that transfer itself')
    const ps = await snapshot(pair.pvm)
    const bs = await snapshot(pair.bvm)
    t.ok(sameSnapshot(ps, bs), `equal (${firstDiff(ps, bs)})`)
  },
)

t.test(
  'a transfer the backup never applied keeps the next sync incremental, with the missed pages',
  async (t) => {
    const pair = await makePair({ trusted: true, pageCount: 128 })
    t.teardown(() => pair.close())
    const rand = rng(11)
    const [a0, b0] = createMemoryLinkPair()
    pair.primary.attachLink(a0)
    pair.backup.attachLink(b0)
    await syncBoth(pair, 1)
    const before = pair.backup.baselineId
    t.equal(before, pair.primary.baselineId, 'a common baseline')

    // The primary resumes at its cut, then the link dies before the TransferEnd arrives.
    const [a1, b1] = createMemoryLinkPair()
    pair.primary.attachLink(
      new FaultyLink(a1, (m) => (m.type === SyncMessageType.TransferEnd ? 'close-before' : 'pass')),
    )
    pair.backup.attachLink(b1)
    const pOnly = await mutateRandomPages(pair.pvm, rand, 12)
    await mutateRandomPages(pair.bvm, rand, 6)
    const failed = await syncBoth(pair, 2)
    t.notOk(failed.p, 'the primary saw the sync fail')
    t.notOk(failed.b, 'the backup applied nothing')
    t.equal(pair.backup.baselineId, before, 'backup still at the old baseline')
    t.not(pair.primary.baselineId, before, 'the primary’s tracker moved to its cut')

    const [a2, b2] = createMemoryLinkPair()
    pair.primary.attachLink(a2)
    pair.backup.attachLink(b2)
    await mutateRandomPages(pair.pvm, rand, 3)
    const next = await syncBoth(pair, 3)
    t.equal(next.p?.mode, SyncMode.Vsmr, 'incremental, not full')
    t.ok(next.p && next.p.unionPages >= pOnly.length, 'the union covers the pages of the lost cut')
    const ps = await snapshot(pair.pvm)
    const bs = await snapshot(pair.bvm)
    t.ok(sameSnapshot(ps, bs), `equal (${firstDiff(ps, bs)})`)
  },
)
