// Property: after every successful sync the backup equals the primary byte for byte (memory
// and device state), whatever random pages either side changed; VSMR sends exactly the pages
// whose contents differ, Remus every page of the union. Seeded, so failures reproduce.
import t, { type Test } from 'tap'
import { createMemoryLinkPair } from '../../src/link/memory-link.js'
import { SyncMode } from '../../src/protocol/messages.js'
import {
  differingPages,
  firstDiff,
  makePair,
  mutateRandomPages,
  rng,
  sameSnapshot,
  snapshot,
  syncBoth,
  tcpPair,
} from './fixtures/harness.js'

/** A pair on an in-memory link, closed at the end of the test. */
async function linkedInMemory(t: Test, opts: Parameters<typeof makePair>[0]) {
  const pair = await makePair(opts)
  const [a, b] = createMemoryLinkPair()
  pair.primary.attachLink(a)
  pair.backup.attachLink(b)
  t.teardown(() => pair.close())
  return pair
}

for (const mode of ['vsmr', 'remus'] as const) {
  t.test(`random page mutations, ${mode} mode, TCP link`, async (t) => {
    const seed = 0x5eed + (mode === 'vsmr' ? 1 : 2)
    const rand = rng(seed)
    const pair = await makePair({ mode })
    const link = await tcpPair()
    pair.primary.attachLink(link.a)
    pair.backup.attachLink(link.b)
    t.teardown(async () => {
      await link.close()
      await pair.close()
    })

    // Epoch 1: the backup is untrusted -> full sync. Both VMs start from the same image, then
    // each writes its own pages (a fresh backup shares much of a primary's RAM, not all of it).
    await mutateRandomPages(pair.pvm, rand, 40)
    await mutateRandomPages(pair.bvm, rand, 40)
    const start = { p: await snapshot(pair.pvm), b: await snapshot(pair.bvm) }
    const differingAtStart = differingPages(start.p, start.b)
    const first = await syncBoth(pair, 1)
    if (mode === 'vsmr') {
      t.equal(first.p?.mode, SyncMode.FullCompared, 'first sync is full, compared')
      t.equal(first.p?.unionPages, pair.pvm.pageCount, 'every page is compared')
      t.equal(
        first.p?.divergentPages,
        differingAtStart,
        `it sends exactly the ${differingAtStart} differing pages`,
      )
    } else {
      t.equal(first.p?.mode, SyncMode.Full, 'first sync is full, copied')
      t.equal(first.p?.divergentPages, pair.pvm.pageCount, 'it sends every page')
    }
    t.equal(first.b?.divergentPages, first.p?.divergentPages, 'the backup counts the pages it received')
    t.ok(sameSnapshot(await snapshot(pair.pvm), await snapshot(pair.bvm)), 'equal after full sync')

    for (let epoch = 2; epoch <= 12; epoch++) {
      // Shared pages: same content written on both sides (the common case PLOVER exploits).
      const same = await mutateRandomPages(pair.pvm, rng(seed * 1000 + epoch), 1 + Math.floor(rand() * 20))
      await mutateRandomPages(pair.bvm, rng(seed * 1000 + epoch), same.length)
      // Divergent pages on each side.
      await mutateRandomPages(pair.pvm, rand, Math.floor(rand() * 10))
      await mutateRandomPages(pair.bvm, rand, Math.floor(rand() * 10))

      const before = { p: await snapshot(pair.pvm), b: await snapshot(pair.bvm) }
      const differing = differingPages(before.p, before.b)
      const { p, b } = await syncBoth(pair, epoch)
      t.ok(p && b, `epoch ${epoch} completed`)
      const after = { p: await snapshot(pair.pvm), b: await snapshot(pair.bvm) }
      t.ok(
        sameSnapshot(after.p, after.b),
        `epoch ${epoch}: backup equals primary (${firstDiff(after.p, after.b)})`,
      )
      t.ok(after.p.memory.equals(before.p.memory), `epoch ${epoch}: primary memory untouched by sync`)
      if (mode === 'vsmr') {
        t.equal(p?.divergentPages, differing, `epoch ${epoch}: sent exactly the ${differing} differing pages`)
        t.equal(p?.identicalPages, (p?.unionPages ?? 0) - differing, 'identical = union - divergent')
      } else {
        t.equal(p?.divergentPages, p?.unionPages, `epoch ${epoch}: Remus sends the whole union`)
        t.equal(p?.identicalPages, 0, 'Remus compares nothing')
      }
      t.equal(b?.divergentPages, p?.divergentPages, 'both sides agree on pages transferred')
    }
  })
}

t.test(
  "fullSync 'copy' in vsmr mode: the full sync sends every page, then syncs are incremental",
  async (t) => {
    const pair = await linkedInMemory(t, { fullSync: 'copy' })
    const rand = rng(11)
    await mutateRandomPages(pair.bvm, rand, 10)
    const first = await syncBoth(pair, 1)
    t.equal(first.p?.mode, SyncMode.Full)
    t.equal(first.p?.divergentPages, pair.pvm.pageCount, 'every page sent')
    await mutateRandomPages(pair.pvm, rand, 5)
    const second = await syncBoth(pair, 2)
    t.equal(second.p?.mode, SyncMode.Vsmr)
    t.ok(sameSnapshot(await snapshot(pair.pvm), await snapshot(pair.bvm)), 'equal')
  },
)

t.test(
  'a union above maxCopyBytes is sent from the paused VM, which resumes only after the Ack',
  async (t) => {
    // 16 pages may be copied: the full sync (256 pages) and the big burst are not; the small one is.
    const pair = await linkedInMemory(t, { maxCopyBytes: 16 * 4096 })
    const rand = rng(13)
    await mutateRandomPages(pair.bvm, rand, 20)
    const stepOrder = (p: { stepsMs: Readonly<Record<string, number>> } | undefined) =>
      Object.keys(p?.stepsMs ?? {})
    const full = await syncBoth(pair, 1)
    t.equal(full.p?.mode, SyncMode.FullCompared)
    t.equal(full.p?.divergentPages, 20, 'only the 20 pages the backup changed are sent')
    t.notOk(stepOrder(full.p).includes('copyPages'), 'no copy of the union')
    t.ok(
      stepOrder(full.p).indexOf('resume') > stepOrder(full.p).indexOf('waitAck'),
      `resumed after the Ack (${stepOrder(full.p).join(' ')})`,
    )
    t.ok(sameSnapshot(await snapshot(pair.pvm), await snapshot(pair.bvm)), 'equal after the full sync')

    await mutateRandomPages(pair.pvm, rand, 100)
    await mutateRandomPages(pair.bvm, rand, 30)
    const burst = await syncBoth(pair, 2)
    t.equal(burst.p?.mode, SyncMode.Vsmr)
    t.notOk(stepOrder(burst.p).includes('copyPages'), 'a burst above the bound is not copied either')
    t.ok(sameSnapshot(await snapshot(pair.pvm), await snapshot(pair.bvm)), 'equal after the burst')

    await mutateRandomPages(pair.pvm, rand, 5)
    const small = await syncBoth(pair, 3)
    t.ok(stepOrder(small.p).includes('copyPages'), 'a small union is copied')
    t.ok(
      stepOrder(small.p).indexOf('resume') < stepOrder(small.p).indexOf('waitAck'),
      'and the VM resumes before the transfer',
    )
    t.ok(sameSnapshot(await snapshot(pair.pvm), await snapshot(pair.bvm)), 'equal after the small sync')
  },
)

t.test('in-memory link pair gives the same result (fast path)', async (t) => {
  const pair = await linkedInMemory(t, {})
  await syncBoth(pair, 1)
  const rand = rng(7)
  await mutateRandomPages(pair.pvm, rand, 30)
  await mutateRandomPages(pair.bvm, rand, 30)
  const { p } = await syncBoth(pair, 2)
  t.ok(p, 'completed')
  t.ok(sameSnapshot(await snapshot(pair.pvm), await snapshot(pair.bvm)), 'equal')
})
