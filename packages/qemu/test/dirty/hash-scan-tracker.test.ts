// The hash-scan tracker on a plain file with vmsync's real PageHasher (worker threads).
import { randomBytes } from 'node:crypto'
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { PageHasher } from '@plover/vmsync'
import t from 'tap'
import { diffDigests, HashScanTracker } from '../../src/dirty/hash-scan-tracker.js'
import { VmNotPausedError } from '../../src/memory/errors.js'

/** What the helpers use of a tap Test. */
type Fixture = { testdir(): string; teardown(fn: () => unknown): void }

const PAGE = 4096
const PAGES = 1024

function setup(t: Fixture) {
  const path = join(t.testdir(), 'ram')
  writeFileSync(path, randomBytes(PAGES * PAGE))
  const hasher = new PageHasher({ threads: 2 })
  t.teardown(() => hasher.close())
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
  return { tracker, write, setPaused: (p: boolean) => (paused = p), bumpStamp: () => stamp++ }
}

t.test('without a baseline every page is dirty', async (t) => {
  const { tracker } = setup(t)
  t.equal((await tracker.collect()).length, PAGES)
})

t.test('finds exactly the pages whose content changed', async (t) => {
  const { tracker, write } = setup(t)
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
  const { tracker, write } = setup(t)
  await tracker.reset()
  for (let cycle = 0; cycle < 6; cycle++) {
    const changed = [cycle, 100 + cycle * 7, PAGES - 1 - cycle]
    write(changed)
    t.same(Array.from(await tracker.collect()), changed, `cycle ${cycle}: exactly the written pages`)
    await tracker.reset()
    t.same(Array.from(await tracker.collect()), [], `cycle ${cycle}: nothing after reset`)
    write([]) // a resume without changes: the next scan must hash again
    t.same(Array.from(await tracker.collect()), [], `cycle ${cycle}: a fresh scan of unchanged RAM is clean`)
  }
})

t.test('rewriting a page with the same bytes is not a change', async (t) => {
  const { tracker, write } = setup(t)
  const zero = Buffer.alloc(PAGE)
  write([7], zero)
  await tracker.reset()
  write([7, 8], zero)
  t.same(Array.from(await tracker.collect()), [8])
})

t.test('a changed stamp invalidates the exposed vector', async (t) => {
  const { tracker, bumpStamp } = setup(t)
  await tracker.collect()
  t.ok(tracker.currentHashes)
  bumpStamp()
  t.equal(tracker.currentHashes, undefined)
})

t.test('refuses to scan a running VM', async (t) => {
  const { tracker, setPaused } = setup(t)
  setPaused(false)
  await t.rejects(tracker.reset(), VmNotPausedError)
  await t.rejects(tracker.collect(), VmNotPausedError)
})

t.test('diffDigests compares whole digests and checks sizes', async (t) => {
  const a = randomBytes(16 * 4)
  const b = Buffer.from(a)
  b[16 * 2 + 15] ^= 1
  t.same(Array.from(diffDigests(a, b, 4)), [2])
  t.throws(() => diffDigests(a, b.subarray(16), 4))
})
