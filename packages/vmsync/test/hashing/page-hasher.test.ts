import { randomBytes, randomFillSync } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { HASH_BYTES, hashPage, hashPagesSync, PageHasher } from '../../src/hashing/index.js'
import type { MemorySource } from '../../src/vm/replicated-vm.js'

const PAGE = 4096
const PAGES = 300

function sharedRandom(pages: number): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(pages * PAGE)
  randomFillSync(new Uint8Array(sab))
  return sab
}

/** Hashes page by page on this thread, independently of the pool's batching. */
function reference(mem: Uint8Array, indices: ArrayLike<number>): Buffer {
  const out = Buffer.alloc(indices.length * HASH_BYTES)
  for (let i = 0; i < indices.length; i++) {
    const p = indices[i]
    hashPage(mem.subarray(p * PAGE, (p + 1) * PAGE)).copy(out, i * HASH_BYTES)
  }
  return out
}

const dir = mkdtempSync(join(tmpdir(), 'plover-hash-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

// pread: the error cases below are about reads; mapped reads have their own (mapped-memory.test.ts).
const hasher = new PageHasher({ threads: 2, minPagesPerWorker: 8, chunkBytes: 64 * 1024, fileReads: 'pread' })
t.teardown(() => hasher.close())

t.test('hashPage is 128-bit and content-sensitive', async (t) => {
  const a = Buffer.alloc(PAGE)
  const h1 = hashPage(a)
  t.equal(h1.length, 16)
  a[PAGE - 1] = 1
  t.not(hashPage(a).toString('hex'), h1.toString('hex'), 'one flipped byte changes the hash')
})

t.test('shared source: all pages and index lists match the reference', async (t) => {
  const sab = sharedRandom(PAGES)
  const mem = new Uint8Array(sab)
  const src: MemorySource = { kind: 'shared', buffer: sab }
  const all = await hasher.hash(src, 'all')
  t.equal(all.length, PAGES * HASH_BYTES)
  t.same(
    all,
    reference(
      mem,
      Array.from({ length: PAGES }, (_, i) => i),
    ),
  )

  const picked = Uint32Array.from([299, 0, 5, 6, 7, 150, 3, 3])
  const some = await hasher.hash(src, picked)
  t.same(some, reference(mem, picked), 'arbitrary order and duplicates keep index order')
  for (let i = 0; i < picked.length; i++) {
    t.same(some.subarray(i * 16, i * 16 + 16), all.subarray(picked[i] * 16, picked[i] * 16 + 16))
  }
  t.same(hashPagesSync(src, picked), some, 'single-thread reference agrees')
})

for (const fileReads of ['mmap', 'pread'] as const) {
  t.test(`file source with offset (${fileReads}): coalesced runs match the reference`, async (t) => {
    const h = new PageHasher({ threads: 2, minPagesPerWorker: 8, chunkBytes: 64 * 1024, fileReads })
    t.teardown(() => h.close())
    const header = 3 * PAGE
    const data = randomBytes(PAGES * PAGE)
    const path = join(dir, `ram-${fileReads}.bin`)
    writeFileSync(path, Buffer.concat([randomBytes(header), data]))
    const src: MemorySource = { kind: 'file', path, offset: header, size: PAGES * PAGE }
    t.same(
      await h.hash(src, 'all'),
      reference(
        data,
        Array.from({ length: PAGES }, (_, i) => i),
      ),
    )
    t.equal(h.lastFileRead, fileReads, `read with ${fileReads}`)
    // runs longer than the 16-page chunk, gaps, a descending pair and single pages
    const picked = Uint32Array.from([...Array.from({ length: 40 }, (_, i) => 10 + i), 100, 102, 101, 299])
    t.same(await h.hash(src, picked), reference(data, picked))
  })
}

t.test('writes into the caller buffer; empty index list', async (t) => {
  const sab = sharedRandom(16)
  const src: MemorySource = { kind: 'shared', buffer: sab }
  const out = Buffer.alloc(16 * HASH_BYTES + 5)
  const r = await hasher.hash(src, 'all', out)
  t.equal(r.buffer, out.buffer, 'result is a view of the given buffer')
  t.same(
    r,
    reference(
      new Uint8Array(sab),
      Array.from({ length: 16 }, (_, i) => i),
    ),
  )
  t.equal((await hasher.hash(src, new Uint32Array(0))).length, 0)
  await t.rejects(hasher.hash(src, 'all', Buffer.alloc(8)), /output buffer/)
})

t.test('hashes see memory changes made between calls', async (t) => {
  const sab = sharedRandom(32)
  const src: MemorySource = { kind: 'shared', buffer: sab }
  const before = await hasher.hash(src, 'all')
  new Uint8Array(sab)[17 * PAGE + 100] ^= 0xff
  const after = await hasher.hash(src, 'all')
  const changed: number[] = []
  for (let p = 0; p < 32; p++) {
    if (!before.subarray(p * 16, p * 16 + 16).equals(after.subarray(p * 16, p * 16 + 16))) changed.push(p)
  }
  t.same(changed, [17])
})

t.test('errors reject clearly and leave the pool usable', async (t) => {
  const good: MemorySource = { kind: 'shared', buffer: sharedRandom(64) }
  await t.rejects(
    hasher.hash({ kind: 'file', path: join(dir, 'missing.bin'), offset: 0, size: 64 * PAGE }, 'all'),
    /cannot open memory file .*missing\.bin/,
  )
  const shortPath = join(dir, 'short.bin')
  writeFileSync(shortPath, randomBytes(10 * PAGE + 100))
  await t.rejects(
    hasher.hash({ kind: 'file', path: shortPath, offset: 0, size: 64 * PAGE }, Uint32Array.from([9, 10])),
    /short read .*short\.bin/,
  )
  await t.rejects(hasher.hash(good, Uint32Array.from([1, 64])), /page index 64 out of range/)
  const ok = await hasher.hash(good, 'all')
  t.same(
    ok,
    reference(
      new Uint8Array(good.buffer),
      Array.from({ length: 64 }, (_, i) => i),
    ),
  )
})

t.test('concurrent calls are serialised and each gets its own answer', async (t) => {
  const a = sharedRandom(40)
  const b = sharedRandom(40)
  const idx = Uint32Array.from({ length: 40 }, (_, i) => 39 - i)
  const [ha, hb] = await Promise.all([
    hasher.hash({ kind: 'shared', buffer: a }, idx),
    hasher.hash({ kind: 'shared', buffer: b }, idx),
  ])
  t.same(ha, reference(new Uint8Array(a), idx))
  t.same(hb, reference(new Uint8Array(b), idx))
})

t.test('close is idempotent and later calls reject', async (t) => {
  const h = new PageHasher({ threads: 1 })
  await h.close()
  await h.close()
  await t.rejects(h.hash({ kind: 'shared', buffer: sharedRandom(1) }, 'all'), /closed/)
})

t.test('a worker that cannot start makes hash() reject instead of respawning forever', async (t) => {
  // Workers under a TS loader need the parent's flags; an unknown --import makes them fail to load.
  const saved = process.execArgv
  Object.defineProperty(process, 'execArgv', {
    value: [...saved, '--import=/nonexistent/loader.mjs'],
    configurable: true,
  })
  let h: PageHasher
  try {
    h = new PageHasher({ threads: 1 })
  } finally {
    Object.defineProperty(process, 'execArgv', { value: saved, configurable: true })
  }
  const src: MemorySource = { kind: 'shared', buffer: sharedRandom(4) }
  await t.rejects(h.hash(src, 'all'), /nonexistent/)
  await t.rejects(h.hash(src, 'all'), /hash workers failed to start/)
  await h.close()
})
