// PageHasher.scan: block-first digests of every page. Whatever it skips must still come out equal
// to hashing every page afresh, on shared and file sources, with a partial last block.
import { randomFillSync } from 'node:crypto'
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { HASH_BYTES, PageHasher } from '../../src/hashing/index.js'
import type { MemorySource } from '../../src/vm/replicated-vm.js'

const PAGE = 4096
const BLOCK = 16
// 300 pages: 18 full blocks and a last block of 12 pages.
const PAGES = 300

const dir = mkdtempSync(join(tmpdir(), 'plover-scan-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
// pread: the error cases below are about reads; mapped reads have their own (mapped-memory.test.ts).
const hasher = new PageHasher({ threads: 2, minPagesPerWorker: 8, chunkBytes: 64 * 1024, fileReads: 'pread' })
t.teardown(() => hasher.close())

/** Writes page `p` of a shared source with fresh random bytes. */
function touchShared(mem: Uint8Array, p: number) {
  randomFillSync(mem.subarray(p * PAGE, (p + 1) * PAGE))
}

const touched = [0, 1, 17, 40, 41, 299]
const touchedBlocks = new Set(touched.map((p) => Math.floor(p / BLOCK))).size

t.test('shared source: a first scan hashes every block; a rescan only the changed ones', async (t) => {
  const sab = new SharedArrayBuffer(PAGES * PAGE)
  const mem = new Uint8Array(sab)
  randomFillSync(mem)
  const src: MemorySource = { kind: 'shared', buffer: sab }
  const first = await hasher.scan(src)
  t.equal(first.blockPages, BLOCK)
  t.equal(first.blocks.length, Math.ceil(PAGES / BLOCK) * HASH_BYTES)
  t.equal(first.changedBlocks, Math.ceil(PAGES / BLOCK), 'no previous scan: every block')
  t.same(first.pages, await hasher.hash(src, 'all'), 'page digests equal plain hashing')

  const same = await hasher.scan(src, first)
  t.equal(same.changedBlocks, 0, 'nothing changed: no block hashed page by page')
  t.same(same.pages, first.pages)

  for (const p of touched) touchShared(mem, p)
  const next = await hasher.scan(src, same)
  t.equal(next.changedBlocks, touchedBlocks, 'exactly the blocks holding written pages')
  t.same(next.pages, await hasher.hash(src, 'all'), 'every page digest is current')
  for (let p = 0; p < PAGES; p++) {
    const was = first.pages.subarray(p * 16, p * 16 + 16)
    const now = next.pages.subarray(p * 16, p * 16 + 16)
    if (touched.includes(p)) t.not(now.toString('hex'), was.toString('hex'), `page ${p} changed`)
    else if (!now.equals(was)) t.fail(`untouched page ${p} changed digest`)
  }
})

for (const fileReads of ['mmap', 'pread'] as const) {
  t.test(
    `file source with offset (${fileReads}): same answers as plain hashing, written into out`,
    async (t) => {
      const h = new PageHasher({ threads: 2, minPagesPerWorker: 8, chunkBytes: 64 * 1024, fileReads })
      t.teardown(() => h.close())
      const offset = 3 * PAGE
      const path = join(dir, `ram-${fileReads}`)
      const bytes = Buffer.alloc(offset + PAGES * PAGE)
      randomFillSync(bytes)
      writeFileSync(path, bytes)
      const src: MemorySource = { kind: 'file', path, offset, size: PAGES * PAGE }
      const out = Buffer.alloc(PAGES * HASH_BYTES)
      const first = await h.scan(src, undefined, out)
      t.equal(h.lastFileRead, fileReads, `read with ${fileReads}`)
      t.equal(first.pages.buffer, out.buffer, 'written into the caller buffer')
      t.same(first.pages, await hasher.hash(src, 'all'), 'equal to plain hashing with pread')
      const prev = { ...first, pages: Buffer.from(first.pages) }

      const fd = openSync(path, 'r+')
      for (const p of touched) writeSync(fd, Buffer.alloc(PAGE, p + 1), 0, PAGE, offset + p * PAGE)
      closeSync(fd)
      // The previous vector may be the very buffer the scan writes into.
      const next = await h.scan(src, { ...prev, pages: out }, out)
      t.equal(next.changedBlocks, touchedBlocks)
      t.same(next.pages, await hasher.hash(src, 'all'))
    },
  )
}

t.test('a previous scan of another shape is ignored, not trusted', async (t) => {
  const sab = new SharedArrayBuffer(PAGES * PAGE)
  randomFillSync(new Uint8Array(sab))
  const src: MemorySource = { kind: 'shared', buffer: sab }
  const other = new PageHasher({ threads: 1, scanBlockPages: 8 })
  t.teardown(() => other.close())
  const foreign = await other.scan(src)
  const next = await hasher.scan(src, foreign)
  t.equal(next.changedBlocks, Math.ceil(PAGES / BLOCK), 'block size differs: a full scan')
  t.same(next.pages, foreign.pages)
})

t.test('scan errors reject clearly and leave the pool usable', async (t) => {
  const src: MemorySource = { kind: 'file', path: join(dir, 'missing'), offset: 0, size: PAGES * PAGE }
  await t.rejects(hasher.scan(src), /cannot open memory file/)
  const short = join(dir, 'short')
  writeFileSync(short, Buffer.alloc(10 * PAGE))
  await t.rejects(hasher.scan({ kind: 'file', path: short, offset: 0, size: PAGES * PAGE }), /short read/)
  const sab = new SharedArrayBuffer(PAGE * 4)
  const ok = await hasher.scan({ kind: 'shared', buffer: sab })
  t.equal(ok.pages.length, 4 * HASH_BYTES)
})
