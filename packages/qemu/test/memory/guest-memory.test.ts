import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { PageRangeError, VmNotPausedError } from '../../src/memory/errors.js'
import { GuestMemory } from '../../src/memory/guest-memory.js'

/** What the helpers use of a tap Test. */
type Fixture = { testdir(): string; teardown(fn: () => unknown): void }

const PAGE = 4096
const PAGES = 64

async function setup(t: Fixture, offset = 0) {
  const dir = t.testdir()
  const path = join(dir, 'ram')
  const content = randomBytes(offset + PAGES * PAGE)
  writeFileSync(path, content)
  let paused = true
  const mem = await GuestMemory.open({ path, size: PAGES * PAGE, offset, isPaused: () => paused })
  t.teardown(() => mem.close())
  return { path, content, mem, setPaused: (p: boolean) => (paused = p) }
}

t.test('reads scattered and consecutive pages into the caller buffer', async (t) => {
  for (const offset of [0, 3 * PAGE]) {
    const { content, mem } = await setup(t, offset)
    const indices = Uint32Array.of(0, 1, 2, 7, 9, 10, 63)
    const dst = new Uint8Array(indices.length * PAGE)
    await mem.readPages(indices, dst)
    indices.forEach((p, i) => {
      t.same(
        Buffer.from(dst.subarray(i * PAGE, (i + 1) * PAGE)),
        content.subarray(offset + p * PAGE, offset + (p + 1) * PAGE),
        `page ${p} at offset ${offset}`,
      )
    })
    t.same(mem.source, {
      kind: 'file',
      path: mem.source.kind === 'file' ? mem.source.path : '',
      offset,
      size: PAGES * PAGE,
    })
  }
})

t.test('writes pages only while paused and changes exactly those pages', async (t) => {
  const { path, content, mem, setPaused } = await setup(t)
  const indices = Uint32Array.of(4, 5, 30)
  const src = randomBytes(indices.length * PAGE)
  setPaused(false)
  await t.rejects(mem.writePages(indices, src), VmNotPausedError)
  t.same(readFileSync(path), content, 'a refused write changes nothing')
  setPaused(true)
  const before = mem.generation
  await mem.writePages(indices, src)
  t.ok(mem.generation > before, 'a write bumps the generation')
  const after = readFileSync(path)
  for (let p = 0; p < PAGES; p++) {
    const i = indices.indexOf(p)
    const expected =
      i >= 0 ? src.subarray(i * PAGE, (i + 1) * PAGE) : content.subarray(p * PAGE, (p + 1) * PAGE)
    if (!after.subarray(p * PAGE, (p + 1) * PAGE).equals(expected)) t.fail(`page ${p} has the wrong content`)
  }
})

t.test('rejects pages beyond RAM and short buffers before any I/O', async (t) => {
  const { path, content, mem } = await setup(t)
  await t.rejects(mem.readPages(Uint32Array.of(PAGES), new Uint8Array(PAGE)), PageRangeError)
  await t.rejects(mem.readPages(Uint32Array.of(1, 2), new Uint8Array(PAGE)), PageRangeError)
  await t.rejects(mem.writePages(Uint32Array.of(0, PAGES), randomBytes(2 * PAGE)), PageRangeError)
  t.same(readFileSync(path), content, 'page 0 was not written when page PAGES was out of range')
})

t.test('refuses a file smaller than the RAM size', async (t) => {
  const path = join(t.testdir(), 'small')
  writeFileSync(path, Buffer.alloc(PAGE))
  await t.rejects(GuestMemory.open({ path, size: 2 * PAGE, isPaused: () => true }), PageRangeError)
})
