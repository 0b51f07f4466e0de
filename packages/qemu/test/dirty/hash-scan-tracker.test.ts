// The hash-scan tracker on a plain file with vmsync's real PageHasher (worker threads), both with
// block-first scans (PageHasher.scan, the default) and with plain page-by-page scans.
import { randomBytes } from 'node:crypto'
import { closeSync, openSync, readSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { type MemorySource, PageHasher, type ScanVector } from '@plover/vmsync'
import t from 'tap'
import { diffDigests, HashScanTracker, type PageHashing } from '../../src/dirty/hash-scan-tracker.js'
import { VmNotPausedError } from '../../src/memory/errors.js'

/** What the helpers use of a tap Test. */
type Fixture = { testdir(): string; teardown(fn: () => unknown): void }

const PAGE = 4096
const PAGES = 1024

type ScanKind = 'block-first' | 'page-by-page'

function setup(t: Fixture, kind: ScanKind) {
  const path = join(t.testdir(), 'ram')
  writeFileSync(path, randomBytes(PAGES * PAGE))
  const pool = new PageHasher({ threads: 2 })
  t.teardown(() => pool.close())
  // Counts what the tracker asks for: full scans and single pages.
  const counts = { fullScans: 0, pagesHashed: 0 }
  const hasher: PageHashing = {
    hash: (source, indices, out) => {
      if (indices === 'all') counts.fullScans++
      else counts.pagesHashed += indices.length
      return pool.hash(source, indices, out)
    },
    ...(kind === 'block-first'
      ? {
          scan: (source: MemorySource, previous?: ScanVector, out?: Buffer) => {
            counts.fullScans++
            return pool.scan(source, previous, out)
          },
        }
      : {}),
  }
  let paused = true
  let stamp = 0
  const tracker = new HashScanTracker({
    hasher,
    source: { kind: 'file', path, offset: 0, size: PAGES * PAGE },
    isPaused: () => paused,
    changeStamp: () => stamp,
  })
  const write = (pages: number[], sameContent?: Buffer) => {
    const fd = openSync(path, 'r+')
    for (const p of pages) writeSync(fd, sameContent ?? randomBytes(PAGE), 0, PAGE, p * PAGE)
    closeSync(fd)
    stamp++
  }
  const read = (page: number) => {
    const b = Buffer.alloc(PAGE)
    const fd = openSync(path, 'r')
    readSync(fd, b, 0, PAGE, page * PAGE)
    closeSync(fd)
    return b
  }
  return {
    tracker,
    write,
    read,
    counts,
    hasher,
    pool,
    source: { kind: 'file', path, offset: 0, size: PAGES * PAGE } as MemorySource,
    stamp: () => stamp,
    setPaused: (p: boolean) => (paused = p),
    bumpStamp: () => stamp++,
  }
}

for (const kind of ['block-first', 'page-by-page'] as const) {
  t.test(`${kind} scans`, async (t) => {
    t.test('without a baseline every page is dirty', async (t) => {
      const { tracker } = setup(t, kind)
      t.equal((await tracker.collect()).length, PAGES)
    })

    t.test('finds exactly the pages whose content changed', async (t) => {
      const { tracker, write } = setup(t, kind)
      await tracker.reset()
      t.same(Array.from(await tracker.collect()), [], 'nothing changed')
      const changed = [0, 1, 2, 500, 1023]
      write(changed)
      t.same(Array.from(await tracker.collect()), changed)
      t.ok(tracker.lastScan && tracker.lastScan.bytesPerSecond > 0)
      t.equal(tracker.digestBytes, 16)
      t.ok(tracker.currentHashes, 'the vector of this scan is exposed while nothing ran')
      await tracker.reset() // adopts the vector just taken
      t.same(Array.from(await tracker.collect()), [])
    })

    t.test('many sync cycles in a row stay exact (reused digest vectors)', async (t) => {
      const { tracker, write } = setup(t, kind)
      await tracker.reset()
      for (let cycle = 0; cycle < 6; cycle++) {
        const changed = [cycle, 100 + cycle * 7, PAGES - 1 - cycle]
        write(changed)
        t.same(Array.from(await tracker.collect()), changed, `cycle ${cycle}: exactly the written pages`)
        await tracker.reset()
        t.same(Array.from(await tracker.collect()), [], `cycle ${cycle}: nothing after reset`)
        write([]) // a resume without changes: the next scan must hash again
        t.same(
          Array.from(await tracker.collect()),
          [],
          `cycle ${cycle}: a fresh scan of unchanged RAM is clean`,
        )
      }
    })

    t.test('rewriting a page with the same bytes is not a change', async (t) => {
      const { tracker, write } = setup(t, kind)
      const zero = Buffer.alloc(PAGE)
      write([7], zero)
      await tracker.reset()
      write([7, 8], zero)
      t.same(Array.from(await tracker.collect()), [8])
    })

    t.test('a changed stamp invalidates the exposed vector', async (t) => {
      const { tracker, bumpStamp } = setup(t, kind)
      await tracker.collect()
      t.ok(tracker.currentHashes)
      bumpStamp()
      t.equal(tracker.currentHashes, undefined)
    })

    t.test('pages the host wrote while paused are re-hashed alone, and the result stays exact', async (t) => {
      const { tracker, write, counts } = setup(t, kind)
      await tracker.reset()
      write([1, 2]) // the guest ran and changed two pages
      t.same(Array.from(await tracker.collect()), [1, 2])
      t.equal(counts.fullScans, 2)
      // The host writes pages (a backup applying a sync): stamp 1 -> 2, noted.
      const before = 1
      write([40, 41])
      tracker.noteWritten(Uint32Array.from([40, 41]), before, 2)
      t.equal(tracker.currentHashes, undefined, 'the exposed vector is stale until patched')
      t.same(Array.from(await tracker.collect()), [1, 2, 40, 41], 'collect sees the written pages')
      t.equal(counts.fullScans, 2, 'no full scan for the written pages')
      t.equal(counts.pagesHashed, 2, 'only the two written pages were hashed')
      await tracker.reset()
      t.equal(counts.fullScans, 2, 'reset adopts the patched vector')
      t.same(Array.from(await tracker.collect()), [], 'nothing changed since the reset')
      write([]) // resume without changes: a real scan must agree with the patched baseline
      t.same(Array.from(await tracker.collect()), [], 'a fresh full scan agrees with the patched baseline')
      t.equal(counts.fullScans, 3)

      // Written right after a reset: the baseline shares the latest vector and must keep old digests.
      await tracker.reset()
      write([77])
      tracker.noteWritten(Uint32Array.from([77]), 3, 4)
      t.same(Array.from(await tracker.collect()), [77], 'the baseline still has page 77’s old digest')
    })

    t.test('a note that does not start at the last scan’s stamp is ignored', async (t) => {
      const { tracker, write } = setup(t, kind)
      await tracker.collect() // scan at stamp 0
      write([5]) // stamp 1: changed without a note (e.g. the VM ran)
      write([6]) // stamp 2
      tracker.noteWritten(Uint32Array.from([6]), 1, 2)
      await tracker.reset()
      write([])
      t.same(Array.from(await tracker.collect()), [], 'reset re-scanned: page 5 is in the baseline')
    })

    t.test('refuses to scan a running VM', async (t) => {
      const { tracker, setPaused } = setup(t, kind)
      setPaused(false)
      await t.rejects(tracker.reset(), VmNotPausedError)
      await t.rejects(tracker.collect(), VmNotPausedError)
    })

    t.test('a page the host patched, then changed back by the guest, is still found', async (t) => {
      // WHY: the patched page's block digest still describes the old contents; a block-first scan
      // that trusted it would skip the block and keep the patched page's digest.
      const { tracker, write, read, stamp } = setup(t, kind)
      await tracker.reset()
      const original = read(40)
      write([40]) // the host (a backup applying a sync) writes page 40, noted
      tracker.noteWritten(Uint32Array.from([40]), stamp() - 1, stamp())
      await tracker.reset() // baseline: page 40 as the host wrote it
      write([40], original) // the guest puts the old bytes back
      t.same(Array.from(await tracker.collect()), [40])
    })

    t.test('the digests it offers the sync are those of every page as it is now', async (t) => {
      // WHY it matters: a sync that takes them instead of hashing compares the backup with them;
      // one stale digest would leave a divergent page on the backup.
      const { tracker, write, hasher, pool, source, stamp, counts, setPaused } = setup(t, kind)
      const everyPage = Uint32Array.from({ length: PAGES }, (_, i) => i)
      const exact = async (what: string) => {
        const offered = await tracker.currentDigests()
        t.equal(offered?.hasher, hasher, `${what}: named with the hasher that made them`)
        const fresh = Buffer.from(await pool.hash(source, everyPage))
        t.ok(
          offered && Buffer.from(offered.digests).equals(fresh),
          `${what}: equal to a fresh hash of every page`,
        )
      }
      await exact('before any scan (it scans)')
      await tracker.reset()
      for (let cycle = 0; cycle < 3; cycle++) {
        write([cycle * 3, 64 + cycle, 500, PAGES - 1]) // the guest ran
        await tracker.collect()
        const scans = counts.fullScans
        await exact(`cycle ${cycle}, right after collect()`)
        t.equal(counts.fullScans, scans, 'the scan collect() made is reused')
        await tracker.reset()
        // The host writes pages while paused (a backup applying a transfer).
        write([700, 701])
        tracker.noteWritten(Uint32Array.from([700, 701]), stamp() - 1, stamp())
        const hashed = counts.pagesHashed
        await exact(`cycle ${cycle}, after host writes`)
        t.equal(counts.fullScans, scans, 'no new scan for them')
        t.equal(counts.pagesHashed - hashed, 2, 'just the two written pages re-hashed')
        write([900]) // the guest ran again, unnoted
        await exact(`cycle ${cycle}, after the guest ran`)
        t.equal(counts.fullScans, scans + 1, 'a new scan')
        await tracker.reset()
      }
      setPaused(false)
      t.equal(await tracker.currentDigests(), undefined, 'none while the VM runs')
    })

    t.test('block-first rescans hash only changed blocks page by page', async (t) => {
      const { tracker, write } = setup(t, kind)
      await tracker.reset()
      write([3, 4, 900])
      t.same(Array.from(await tracker.collect()), [3, 4, 900])
      if (kind === 'block-first') t.equal(tracker.lastScan?.changedBlocks, 2, 'blocks 0 and 56')
      else t.equal(tracker.lastScan?.changedBlocks, undefined)
    })
  })
}

t.test('diffDigests compares whole digests and checks sizes', async (t) => {
  const a = randomBytes(16 * 4)
  const b = Buffer.from(a)
  b[16 * 2 + 15] ^= 1
  t.same(Array.from(diffDigests(a, b, 4)), [2])
  t.throws(() => diffDigests(a, b.subarray(16), 4))
})
