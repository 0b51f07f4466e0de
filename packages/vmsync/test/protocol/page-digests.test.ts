// A sync takes the digests it compares from the dirty tracker's scan when the tracker offers them
// for RAM as it is and made them with the sync's own hasher (hash-scan tracking on QEMU hashes
// every page anyway). Here: the selection rule on its own, then whole syncs over TCP whose
// trackers offer digests, which must leave the backup byte-equal without hashing again.
import t from 'tap'
import { hashPagesSync } from '../../src/hashing/index.js'
import { HASH_BYTES } from '../../src/hashing/messages.js'
import { SyncMode } from '../../src/protocol/messages.js'
import { digestsOf } from '../../src/protocol/page-digests.js'
import type { PageHashing } from '../../src/protocol/sync-options.js'
import { SimulatedVm } from '../../src/simulated/index.js'
import type { DirtyTracker, TrackerDigests } from '../../src/vm/replicated-vm.js'
import {
  firstDiff,
  makePair,
  mutateRandomPages,
  rng,
  sameSnapshot,
  snapshot,
  syncBoth,
  syncHasher,
  tcpPair,
} from './fixtures/harness.js'

const every = (n: number) => Uint32Array.from({ length: n }, (_, i) => i)

/**
 * The VM's own tracker, plus the digests of every page while the VM is paused — taken at each
 * collect(), as a hash-scan tracker has them, else made when asked — forgotten at reset().
 * (Host writes between a collect() and the request would be missed: the protocol asks before it
 * writes; the real tracker's handling of writes is tested in @plover/qemu.)
 */
function scanningTracker(vm: SimulatedVm, by: PageHashing): DirtyTracker & { offered: number } {
  let digests: Uint8Array | undefined
  const self = {
    offered: 0,
    async collect() {
      const dirty = await vm.dirtyTracker.collect()
      digests = hashPagesSync(vm.memorySource, every(vm.pageCount))
      return dirty
    },
    async reset() {
      digests = undefined
      await vm.dirtyTracker.reset()
    },
    async currentDigests(): Promise<TrackerDigests | undefined> {
      if (vm.runState !== 'paused') return undefined
      digests ??= hashPagesSync(vm.memorySource, every(vm.pageCount))
      self.offered++
      return { hasher: by, digests }
    },
  }
  return self
}

/** Counts the pages a PageHashing was asked to hash. */
function countingHasher(): PageHashing & { pages: number } {
  const h = {
    pages: 0,
    async hash(source: Parameters<PageHashing['hash']>[0], indices: Uint32Array) {
      h.pages += indices.length
      return hashPagesSync(source, indices)
    },
  }
  return h
}

t.test('digestsOf: the tracker’s vector only when it comes from the same hasher and fits', async (t) => {
  const vm = new SimulatedVm({ pageCount: 64, deterministic: true })
  t.teardown(() => vm.close())
  await vm.pause()
  await mutateRandomPages(vm, rng(3), 20)
  const hasher = countingHasher()
  const all = hashPagesSync(vm.memorySource, every(64))
  const offering = (d: TrackerDigests | undefined): DirtyTracker => ({
    collect: async () => new Uint32Array(0),
    reset: async () => {},
    currentDigests: async () => d,
  })
  const some = Uint32Array.from([0, 5, 6, 40, 63])
  const ask = (tracker: DirtyTracker, pages: Uint32Array) => digestsOf({ vm, tracker, hasher }, pages)
  const expect = (pages: Uint32Array) => Buffer.from(hashPagesSync(vm.memorySource, pages))

  const taken = await ask(offering({ hasher, digests: all }), some)
  t.notOk(taken.hashed, 'taken from the tracker')
  t.ok(Buffer.from(taken.digests).equals(expect(some)), 'the digests of exactly those pages, in order')
  const whole = await ask(offering({ hasher, digests: all }), every(64))
  t.ok(Buffer.from(whole.digests).equals(Buffer.from(all)), 'every page: the whole vector')
  t.not(whole.digests.buffer, all.buffer, 'a copy: the tracker reuses its vector')
  // Same length as every page but not every page (a peer's list): gathered page by page.
  const odd = Uint32Array.from({ length: 64 }, (_, i) => (i === 0 ? 1 : i))
  const gathered = await ask(offering({ hasher, digests: all }), odd)
  t.ok(Buffer.from(gathered.digests).equals(expect(odd)), 'a 64-entry list that is not 0..63 is gathered')
  t.equal(hasher.pages, 0, 'nothing was hashed so far')

  const other = countingHasher()
  const foreign = await ask(offering({ hasher: other, digests: all }), some)
  t.ok(foreign.hashed, 'made by another hasher object: hashed again')
  const short = await ask(offering({ hasher, digests: all.subarray(0, 63 * HASH_BYTES) }), some)
  t.ok(short.hashed, 'a vector that does not fit the VM: hashed again')
  const none = await ask(offering(undefined), some)
  t.ok(none.hashed, 'nothing offered: hashed')
  const plain = await ask(vm.dirtyTracker, some)
  t.ok(plain.hashed, 'a tracker without currentDigests: hashed')
  t.equal(hasher.pages, some.length * 4, 'each fallback hashed just the pages asked for')
  t.ok(Buffer.from(none.digests).equals(expect(some)))
})

t.test('incremental syncs compare the trackers’ digests and leave the backup byte-equal', async (t) => {
  const trackers: ReturnType<typeof scanningTracker>[] = []
  const pair = await makePair({
    trusted: true,
    pageCount: 256,
    tracker: (vm) => {
      const tr = scanningTracker(vm, syncHasher)
      trackers.push(tr)
      return tr
    },
  })
  t.teardown(() => pair.close())
  const link = await tcpPair()
  t.teardown(() => link.close())
  pair.primary.attachLink(link.a)
  pair.backup.attachLink(link.b)
  const rand = rng(11)
  for (let epoch = 1; epoch <= 5; epoch++) {
    // Both VMs change the same pages the same way, and a few differently (nondeterminism).
    const shared = rng(100 + epoch)
    await mutateRandomPages(pair.pvm, shared, 12)
    await mutateRandomPages(pair.bvm, rng(100 + epoch), 12)
    await mutateRandomPages(pair.pvm, rand, 3)
    await mutateRandomPages(pair.bvm, rand, 2)
    const { p, b: r } = await syncBoth(pair, epoch)
    t.equal(p?.mode, SyncMode.Vsmr, `epoch ${epoch}: incremental`)
    t.ok((p?.identicalPages ?? 0) > 0, `epoch ${epoch}: identical pages found (${p?.identicalPages})`)
    t.equal(p?.hashedBytes, 0, `epoch ${epoch}: the primary hashed nothing again`)
    t.equal(r?.hashedBytes, 0, `epoch ${epoch}: nor did the backup`)
    const ps = await snapshot(pair.pvm)
    const bs = await snapshot(pair.bvm)
    t.ok(sameSnapshot(ps, bs), `epoch ${epoch}: backup equals primary (${firstDiff(ps, bs)})`)
  }
  t.ok(
    trackers.every((tr) => tr.offered >= 5),
    'both trackers were asked every time',
  )
})

t.test('a full compared sync takes every page’s digest from the primary’s scan', async (t) => {
  const hasher = countingHasher()
  let made = 0
  const pair = await makePair({
    pageCount: 256,
    fullSync: 'compare',
    primaryHasher: hasher,
    // The primary's tracker (made first) names the primary's hasher, the backup's its own.
    tracker: (vm) => scanningTracker(vm, made++ === 0 ? hasher : syncHasher),
  })
  t.teardown(() => pair.close())
  const link = await tcpPair()
  t.teardown(() => link.close())
  pair.primary.attachLink(link.a)
  pair.backup.attachLink(link.b)
  await mutateRandomPages(pair.pvm, rng(5), 40)
  const before = await snapshot(pair.pvm)
  const { p } = await syncBoth(pair, 1)
  t.equal(p?.mode, SyncMode.FullCompared)
  const steps = Object.keys(p?.stepsMs ?? {})
  t.ok(
    steps.indexOf('copyPages') < steps.indexOf('waitHashes'),
    `a fresh backup, not pre-copied: the primary copies all of RAM and resumes before its hashes (${steps.join(' ')})`,
  )
  t.equal(p?.hashedBytes, 0, 'the primary hashed no page again')
  t.equal(hasher.pages, 0, 'its hasher was not called for the comparison')
  const after = await snapshot(pair.bvm)
  t.ok(sameSnapshot(before, after), `the backup equals the primary (${firstDiff(before, after)})`)
})
