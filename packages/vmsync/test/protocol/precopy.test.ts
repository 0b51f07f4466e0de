// Pre-copy before a new backup's full sync: the untrusted backup pauses and offers its page
// hashes, the primary sends the pages it lacks while its own VM keeps running and changing, and
// markers meanwhile are deferred. The full sync afterwards still compares every page, so the
// backup ends byte-identical however stale the pre-copied pages were. Real TCP links.
import t, { type Test } from 'tap'
import { createMemoryLinkPair } from '../../src/link/memory-link.js'
import { encodeSyncMessage } from '../../src/protocol/codec.js'
import { SyncMessageType, SyncMode } from '../../src/protocol/messages.js'
import type { PrecopyRound } from '../../src/protocol/precopy-sender.js'
import type { PageHashing } from '../../src/protocol/sync-options.js'
import { encodeKvRequest, KvOp } from '../../src/simulated/index.js'
import type { MemorySource } from '../../src/vm/replicated-vm.js'
import {
  differingPages,
  encodedPrecopyPages,
  type FaultAction,
  FaultyLink,
  firstDiff,
  makePair,
  mutateRandomPages,
  type Pair,
  rng,
  sameSnapshot,
  snapshot,
  syncBoth,
  syncHasher,
  tcpPair,
  waitEvent,
} from './fixtures/harness.js'

const PAGES = 1024

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) return false
    await new Promise((r) => setTimeout(r, 5))
  }
  return true
}

/** syncHasher whose whole-RAM hashes (pre-copy rounds) wait while the gate is shut. */
function gatedHasher(pageCount: number) {
  let open: () => void = () => {}
  let gate: Promise<void> | undefined
  let entered: () => void = () => {}
  const enteredP = new Promise<void>((r) => {
    entered = r
  })
  const hasher: PageHashing = {
    async hash(source: MemorySource, indices: Uint32Array) {
      if (indices.length === pageCount && gate) {
        entered()
        await gate
      }
      return syncHasher.hash(source, indices)
    },
  }
  return {
    hasher,
    shut() {
      gate = new Promise<void>((r) => {
        open = r
      })
    },
    open: () => open(),
    /** Resolves once a whole-RAM hash waited at the gate. */
    entered: enteredP,
  }
}

/** Keeps the primary's VM busy with writes until stopped (it changes pages during pre-copy). */
function writer(pair: Pair) {
  let stop = false
  let n = 0
  const done = (async () => {
    while (!stop) {
      for (let i = 0; i < 20; i++) {
        const key = `k${n % 300}`
        await pair.pvm.injectFrame(
          encodeKvRequest({ op: KvOp.Set, clientId: 1, requestId: ++n, key, value: `v${n}`.repeat(40) }),
        )
      }
      await new Promise((r) => setTimeout(r, 2))
    }
  })()
  return {
    async stop() {
      stop = true
      await done
      await new Promise((r) => setTimeout(r, 20))
      await pair.pvm.drained()
    },
  }
}

/**
 * A fresh TCP link after a lost one: the untrusted backup offers again, and once the rounds are
 * done (`onReady` sees that moment) the marker `epoch` runs the full sync. The primary's report.
 */
async function rejoin(t: Test, pair: Pair, epoch: number, onReady: () => void = () => {}) {
  const link = await tcpPair()
  t.teardown(() => link.close())
  const ready = waitEvent(pair.primary, 'precopy-ready')
  pair.primary.attachLink(link.a)
  pair.backup.attachLink(link.b)
  await ready
  onReady()
  await pair.pvm.pause()
  return (await syncBoth(pair, epoch)).p
}

async function linked(t: Test, pair: Pair) {
  const link = await tcpPair()
  t.teardown(async () => {
    await link.close()
    await pair.close()
  })
  return link
}

t.test('a running primary pre-copies to a new backup; the full sync then sends few pages', async (t) => {
  const pair = await makePair({ pageCount: PAGES, precopy: {}, batchPages: 16 })
  const link = await linked(t, pair)
  const rand = rng(0x9c0b7)
  // A fresh backup shares the image but not all of it.
  await mutateRandomPages(pair.bvm, rand, 400)
  await pair.pvm.resume()
  const load = writer(pair)
  const rounds: PrecopyRound[] = []
  pair.primary.on('precopy-round', (r) => rounds.push(r))
  const ready = waitEvent(pair.primary, 'precopy-ready')
  pair.primary.attachLink(link.a)
  pair.backup.attachLink(link.b)
  await ready
  t.equal(pair.bvm.runState, 'paused', 'the untrusted backup is paused during pre-copy')
  t.equal(pair.pvm.runState, 'running', 'the primary never paused for it')
  t.ok(rounds.length >= 1, `${rounds.length} pre-copy round(s)`)
  t.ok(rounds[0].sentPages >= 400, `round 1 sent the backup's ${rounds[0].sentPages} differing pages`)
  // The primary keeps changing pages after the pre-copy, as it would until the next marker.
  await new Promise((r) => setTimeout(r, 100))
  await load.stop()
  await pair.pvm.pause()
  const differingBefore = differingPages(await snapshot(pair.pvm), await snapshot(pair.bvm))
  t.ok(differingBefore > 0, `${differingBefore} pages changed since the pre-copy`)
  const { p, b } = await syncBoth(pair, 1)
  t.equal(p?.mode, SyncMode.FullCompared, 'then a compared full sync')
  t.equal(p?.unionPages, PAGES, 'over every page')
  t.equal(p?.divergentPages, differingBefore, `it sends exactly the ${differingBefore} pages still differing`)
  t.ok(differingBefore < 400, `fewer than the 400 a full sync without pre-copy sends (${differingBefore})`)
  const sent = rounds.reduce((n, r) => n + r.sentPages, 0)
  t.equal(p?.precopiedPages, sent, 'the primary reports the pre-copied pages')
  t.ok(
    p && p.bytesSent <= p.divergentPages * 4096 + p.deviceStateSentBytes + 16 * 1024,
    `the paused step's ${p?.bytesSent} bytes are its own pages, device state and framing`,
  )
  t.equal(b?.precopiedPages, sent, 'the backup wrote every one of them')
  t.ok(p?.stepsMs.waitHashes !== undefined && p.stepsMs.copyPages !== undefined, 'hashes before the copy')
  const ps = await snapshot(pair.pvm)
  const bs = await snapshot(pair.bvm)
  t.ok(sameSnapshot(ps, bs), `backup equals primary byte for byte (${firstDiff(ps, bs)})`)
  t.equal(pair.backup.needFull, false, 'the backup is trusted')
  t.equal(pair.bvm.runState, 'paused', 'and resumed by its sync (syncBoth paused it again)')

  // The next sync is incremental as usual.
  await mutateRandomPages(pair.pvm, rand, 5)
  const next = await syncBoth(pair, 2)
  t.equal(next.p?.mode, SyncMode.Vsmr, 'the next sync is incremental')
  t.ok(sameSnapshot(await snapshot(pair.pvm), await snapshot(pair.bvm)), 'still equal')
})

t.test('a synced backup that becomes untrusted (missed inputs) offers a pre-copy at once', async (t) => {
  const pair = await makePair({ pageCount: 256, precopy: {}, trusted: true })
  const link = await linked(t, pair)
  pair.primary.attachLink(link.a)
  pair.backup.attachLink(link.b)
  await mutateRandomPages(pair.pvm, rng(11), 30)
  await pair.bvm.resume()
  const ready = waitEvent(pair.primary, 'precopy-ready')
  pair.backup.distrust()
  await ready
  t.equal(pair.bvm.runState, 'paused', 'the backup paused for it')
  const { p } = await syncBoth(pair, 1)
  t.equal(p?.mode, SyncMode.FullCompared)
  t.equal(p?.precopiedPages, 30, 'the 30 changed pages went before the marker')
  t.equal(p?.divergentPages, 0, 'and none in the pause')
  t.ok(sameSnapshot(await snapshot(pair.pvm), await snapshot(pair.bvm)), 'backup equals primary')
})

t.test('a marker before pre-copy converged is deferred: no pause, no transfer', async (t) => {
  const gate = gatedHasher(PAGES)
  gate.shut()
  const pair = await makePair({ pageCount: PAGES, precopy: {}, primaryHasher: gate.hasher })
  const link = await linked(t, pair)
  await mutateRandomPages(pair.bvm, rng(7), 100)
  await pair.pvm.resume()
  pair.primary.attachLink(link.a)
  pair.backup.attachLink(link.b)
  await gate.entered
  const pauses: string[] = []
  const origPause = pair.pvm.pause.bind(pair.pvm)
  pair.pvm.pause = async () => {
    pauses.push('pause')
    await origPause()
  }
  const skipped: string[] = []
  pair.primary.on('sync-skipped', (_e, reason) => skipped.push(`primary: ${reason}`))
  pair.backup.on('sync-skipped', (_e, reason) => skipped.push(`backup: ${reason}`))
  const marker = { epoch: 1, outputCount: 0 }
  const [p, b] = await Promise.all([pair.primary.runSync(marker), pair.backup.runSync(marker)])
  t.equal(p, undefined, 'no sync on the primary')
  t.equal(b, undefined, 'nor on the backup')
  t.same(skipped, ['primary: backup pre-copy in progress', 'backup: pre-copy in progress'])
  t.same(pauses, [], 'the primary VM was not paused')
  t.equal(pair.bvm.runState, 'paused', 'the backup stays paused for the pre-copy')
  t.equal(pair.backup.needFull, true, 'and untrusted')
  t.equal(pair.guard.isProtected, false, 'the primary is unprotected meanwhile')

  const ready = waitEvent(pair.primary, 'precopy-ready')
  gate.open()
  await ready
  await pair.pvm.pause()
  const full = await syncBoth(pair, 2)
  t.equal(full.p?.mode, SyncMode.FullCompared, 'the next marker brings the full sync')
  t.ok((full.p?.precopiedPages ?? 0) >= 100, `after ${full.p?.precopiedPages} pre-copied pages`)
  t.equal(full.p?.divergentPages, 0, 'nothing changed since: no page left to send')
  t.ok(sameSnapshot(await snapshot(pair.pvm), await snapshot(pair.bvm)), 'backup equals primary')
  t.equal(pair.guard.isProtected, true, 'protected again')
})

t.test('a link lost during pre-copy resumes the backup, untrusted; a new link starts over', async (t) => {
  const gate = gatedHasher(PAGES)
  gate.shut()
  const pair = await makePair({ pageCount: PAGES, precopy: {}, primaryHasher: gate.hasher })
  t.teardown(() => pair.close())
  await mutateRandomPages(pair.bvm, rng(8), 50)
  await pair.pvm.resume()
  await pair.bvm.resume()
  const first = await tcpPair()
  pair.primary.attachLink(first.a)
  pair.backup.attachLink(first.b)
  await gate.entered
  t.equal(pair.bvm.runState, 'paused', 'paused for the pre-copy')
  const down = waitEvent(pair.backup, 'link-down')
  await first.close()
  await down
  t.ok(await until(() => pair.bvm.runState === 'running', 2000), 'resumed once the link is gone')
  t.equal(pair.backup.needFull, true, 'still untrusted')

  gate.open()
  const p = await rejoin(t, pair, 1, () => {
    t.equal(pair.bvm.runState, 'paused', 'paused again for the new offer')
  })
  t.equal(p?.mode, SyncMode.FullCompared)
  t.ok((p?.precopiedPages ?? 0) >= 50, 'pre-copied over the new link')
  t.ok(sameSnapshot(await snapshot(pair.pvm), await snapshot(pair.bvm)), 'backup equals primary')
})

t.test(
  'an offer arriving after the paused marker: that marker is deferred, the rounds run, then the full sync',
  async (t) => {
    const pair = await makePair({ pageCount: PAGES, precopy: {} })
    const link = await linked(t, pair)
    await mutateRandomPages(pair.bvm, rng(9), 60)
    const rounds: PrecopyRound[] = []
    pair.primary.on('precopy-round', (r) => rounds.push(r))
    const skipped: string[] = []
    pair.primary.on('sync-skipped', (_e, reason) => skipped.push(reason))
    // The primary's side starts first, so it pauses before the offer arrives.
    pair.primary.attachLink(link.a)
    const marker = { epoch: 1, outputCount: 0 }
    const pRun = pair.primary.runSync(marker)
    const ready = waitEvent(pair.primary, 'precopy-ready')
    pair.backup.attachLink(link.b)
    const [p, b] = await Promise.all([pRun, pair.backup.runSync(marker)])
    t.equal(p, undefined, 'no sync at that marker')
    t.equal(b, undefined)
    t.same(skipped, ['backup pre-copy in progress'])
    t.equal(pair.pvm.runState, 'running', 'the primary resumed')
    await ready
    t.ok(rounds.length > 0 && rounds[0].sentPages >= 60, 'the rounds ran after it')
    await pair.pvm.pause()
    const full = await syncBoth(pair, 2)
    t.equal(full.p?.mode, SyncMode.FullCompared, 'the next marker brings the full sync')
    t.equal(full.p?.precopiedPages, rounds[0].sentPages)
    t.equal(full.p?.divergentPages, 0)
    t.ok(sameSnapshot(await snapshot(pair.pvm), await snapshot(pair.bvm)), 'backup equals primary')
  },
)

t.test('a primary that does not pre-copy ignores the offer; the full sync still completes', async (t) => {
  for (const opts of [{ precopy: false as const }, { mode: 'remus' as const }]) {
    const pair = await makePair({ pageCount: 256, backupPrecopy: {}, ...opts })
    const [a, b] = createMemoryLinkPair()
    pair.primary.attachLink(a)
    pair.backup.attachLink(b)
    await mutateRandomPages(pair.bvm, rng(10), 20)
    const { p } = await syncBoth(pair, 1)
    t.ok(p && (p.mode === SyncMode.FullCompared || p.mode === SyncMode.Full), `${JSON.stringify(opts)}: full`)
    t.equal(p?.precopiedPages, 0, 'nothing pre-copied')
    t.ok(sameSnapshot(await snapshot(pair.pvm), await snapshot(pair.bvm)), 'backup equals primary')
    await pair.close()
  }
})

t.test('a backup VM that refuses a pre-copy write drops the link and stays untrusted', async (t) => {
  const pair = await makePair({ pageCount: 256, precopy: {} })
  const link = await linked(t, pair)
  await mutateRandomPages(pair.bvm, rng(12), 40)
  await pair.bvm.resume()
  const write = pair.bvm.writePages.bind(pair.bvm)
  pair.bvm.writePages = async () => {
    throw new Error('guest memory went away')
  }
  const down = waitEvent<[Error | undefined]>(pair.backup, 'link-down')
  pair.primary.attachLink(link.a)
  pair.backup.attachLink(link.b)
  const [err] = await down
  t.match(err?.message, /guest memory went away/, 'the write error closes the link')
  t.equal(pair.backup.needFull, true, 'the backup stays untrusted')
  t.ok(await until(() => pair.bvm.runState === 'running', 2000), 'and its VM runs again')
  pair.bvm.writePages = write
})

t.test('bad pre-copy bytes close the link with a clear error; nothing is written', async (t) => {
  await t.test('an offer with the wrong number of hashes', async (t) => {
    const pair = await makePair({ pageCount: 64, precopy: {} })
    t.teardown(() => pair.close())
    const [a, b] = createMemoryLinkPair()
    const down = waitEvent<[Error | undefined]>(pair.primary, 'link-down')
    pair.primary.attachLink(a)
    await b.send(
      encodeSyncMessage({ type: SyncMessageType.PrecopyOffer, epoch: 0, hashes: new Uint8Array(48) }),
    )
    const [err] = await down
    t.match(err?.message, /pre-copy offer carries 3 hashes for a VM of 64 pages/)
  })
  await t.test('pages without an offer (a trusted backup)', async (t) => {
    const pair = await makePair({ pageCount: 64, trusted: true })
    t.teardown(() => pair.close())
    const before = await snapshot(pair.bvm)
    const [a, b] = createMemoryLinkPair()
    const down = waitEvent<[Error | undefined]>(pair.backup, 'link-down')
    pair.backup.attachLink(b)
    await a.send(encodedPrecopyPages([3], 0xee))
    const [err] = await down
    t.match(err?.message, /pre-copy pages without an offer/)
    t.ok(sameSnapshot(before, await snapshot(pair.bvm)), 'the VM is untouched')
  })
  await t.test('pages out of range', async (t) => {
    const pair = await makePair({ pageCount: 64, precopy: {} })
    t.teardown(() => pair.close())
    const [a, b] = createMemoryLinkPair()
    const offered = new Promise<void>((r) => a.once('message', () => r()))
    const down = waitEvent<[Error | undefined]>(pair.backup, 'link-down')
    pair.backup.attachLink(b)
    await offered
    await a.send(encodedPrecopyPages([64]))
    const [err] = await down
    t.match(err?.message, /out of range/)
    t.equal(pair.backup.needFull, true, 'still untrusted')
  })
})

// A side dies (its link is destroyed) at each pre-copy step. The backup must stay untrusted, its
// VM must run again, and a pre-copy plus full sync over a fresh link must make it equal.
interface PrecopyFault {
  readonly name: string
  readonly side: 'primary' | 'backup'
  readonly type: SyncMessageType
  readonly action: FaultAction
  readonly nth: number
  /** Where the fault happens: during the rounds, at a deferred marker, or in the full sync. */
  readonly phase: 'rounds' | 'deferred' | 'final'
}

const precopyFaults: PrecopyFault[] = [
  {
    name: 'backup dies before its offer',
    side: 'backup',
    type: SyncMessageType.PrecopyOffer,
    action: 'close-before',
    nth: 0,
    phase: 'rounds',
  },
  {
    name: 'primary dies before the 2nd pre-copy batch',
    side: 'primary',
    type: SyncMessageType.PrecopyPages,
    action: 'close-before',
    nth: 1,
    phase: 'rounds',
  },
  {
    name: 'link drops after the 1st pre-copy batch',
    side: 'primary',
    type: SyncMessageType.PrecopyPages,
    action: 'close-after',
    nth: 0,
    phase: 'rounds',
  },
  {
    name: 'primary dies before the Deferred union',
    side: 'primary',
    type: SyncMessageType.Union,
    action: 'close-before',
    nth: 0,
    phase: 'deferred',
  },
  {
    name: 'primary dies mid full sync after the pre-copy',
    side: 'primary',
    type: SyncMessageType.Pages,
    action: 'close-before',
    nth: 1,
    phase: 'final',
  },
]

for (const f of precopyFaults) {
  t.test(`pre-copy fault: ${f.name}`, async (t) => {
    const gate = gatedHasher(512)
    if (f.phase === 'deferred') gate.shut()
    const pair = await makePair({ pageCount: 512, precopy: {}, batchPages: 8, primaryHasher: gate.hasher })
    t.teardown(() => pair.close())
    await mutateRandomPages(pair.bvm, rng(20), 100)
    await pair.bvm.resume()
    const [a, b] = createMemoryLinkPair()
    const faulty = new FaultyLink(f.side === 'primary' ? a : b, (m, sent) =>
      m.type === f.type && sent.filter((s) => s.type === f.type).length === f.nth ? f.action : 'pass',
    )
    const down = waitEvent(pair.backup, 'link-down')
    const ready = waitEvent(pair.primary, 'precopy-ready').catch(() => undefined)
    pair.primary.attachLink(f.side === 'primary' ? faulty : a)
    pair.backup.attachLink(f.side === 'backup' ? faulty : b)
    if (f.phase === 'deferred') {
      await gate.entered
      const marker = { epoch: 1, outputCount: 0 }
      await Promise.all([pair.primary.runSync(marker), pair.backup.runSync(marker)])
      gate.open()
    }
    if (f.phase === 'final') {
      await ready
      await mutateRandomPages(pair.pvm, rng(21), 20) // changed after the pre-copy: the final step sends them
      const marker = { epoch: 1, outputCount: 0 }
      await Promise.all([pair.primary.runSync(marker), pair.backup.runSync(marker)])
    }
    await down
    t.equal(pair.backup.needFull, true, 'the backup stays untrusted')
    t.ok(await until(() => pair.bvm.runState === 'running', 2000), 'its VM runs again')

    const p = await rejoin(t, pair, 2)
    t.equal(p?.mode, SyncMode.FullCompared, 'a fresh link brings the full sync')
    const ps = await snapshot(pair.pvm)
    const bs = await snapshot(pair.bvm)
    t.ok(sameSnapshot(ps, bs), `backup equals primary (${firstDiff(ps, bs)})`)
    t.equal(pair.backup.needFull, false, 'trusted')
  })
}
