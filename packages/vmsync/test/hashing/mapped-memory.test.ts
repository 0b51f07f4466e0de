// Hash workers reading a file source through a memory mapping (@plover/mapped-file): the default
// where the addon is built, as it is in CI. What a mapping adds over pread: it must notice a file
// replaced under the same name, and a file that shrank must give an error, never a SIGBUS.
import { randomBytes } from 'node:crypto'
import {
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { HASH_BYTES, hashPagesSync, PageHasher } from '../../src/hashing/index.js'
import type { MemorySource } from '../../src/vm/replicated-vm.js'

const PAGE = 4096
const PAGES = 256

// /dev/shm: where QEMU guests keep their RAM files (tmpfs).
const dir = mkdtempSync(join('/dev/shm', 'plover-mapped-hash-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const hasher = new PageHasher({ threads: 2, minPagesPerWorker: 8 })
t.teardown(() => hasher.close())

function ramFile(name: string, pages = PAGES): { path: string; src: MemorySource } {
  const path = join(dir, name)
  writeFileSync(path, randomBytes(pages * PAGE))
  return { path, src: { kind: 'file', path, offset: 0, size: PAGES * PAGE } }
}

t.test("'auto' maps file sources when the addon is built", async (t) => {
  const { src } = ramFile('auto')
  const scan = await hasher.scan(src)
  t.same(hasher.mappedFiles, { available: true }, 'every worker can map')
  t.equal(hasher.lastFileRead, 'mmap')
  t.same(scan.pages, hashPagesSync(src, 'all'), 'same digests as the single-thread pread reference')
})

t.test('writes to the file between scans show through the kept mapping', async (t) => {
  const { path, src } = ramFile('writes')
  const first = await hasher.scan(src)
  const fd = openSync(path, 'r+')
  writeSync(fd, Buffer.alloc(PAGE, 7), 0, PAGE, 42 * PAGE)
  closeSync(fd)
  const next = await hasher.scan(src, first)
  t.equal(next.changedBlocks, 1)
  const changed = []
  for (let p = 0; p < PAGES; p++)
    if (
      !next.pages
        .subarray(p * HASH_BYTES, (p + 1) * HASH_BYTES)
        .equals(first.pages.subarray(p * HASH_BYTES, (p + 1) * HASH_BYTES))
    )
      changed.push(p)
  t.same(changed, [42])
})

t.test('a file replaced under the same name (a new guest) is mapped afresh', async (t) => {
  const { path, src } = ramFile('replaced')
  await hasher.hash(src, 'all')
  unlinkSync(path)
  writeFileSync(path, randomBytes(PAGES * PAGE))
  const again = await hasher.hash(src, 'all')
  t.same(again, hashPagesSync(src, 'all'), 'digests of the new file, not of the old mapping')
})

t.test('a file that shrank or vanished gives an error and the pool stays usable', async (t) => {
  const { path, src } = ramFile('shrinks')
  await hasher.scan(src)
  truncateSync(path, 10 * PAGE)
  await t.rejects(hasher.scan(src), /memory file .*shrinks holds 40960 bytes, the source needs 1048576/)
  await t.rejects(hasher.hash(src, Uint32Array.from([3])), /holds 40960 bytes/)
  unlinkSync(path)
  await t.rejects(hasher.scan(src), /cannot open memory file .*shrinks/)
  const ok = ramFile('after')
  t.same(await hasher.hash(ok.src, 'all'), hashPagesSync(ok.src, 'all'), 'next job works')
})

t.test("'auto' reads a source whose offset is not page-aligned; 'mmap' refuses it", async (t) => {
  const path = join(dir, 'unaligned')
  writeFileSync(path, randomBytes(100 + PAGES * PAGE))
  const src: MemorySource = { kind: 'file', path, offset: 100, size: PAGES * PAGE }
  t.same(await hasher.hash(src, 'all'), hashPagesSync(src, 'all'))
  t.equal(hasher.lastFileRead, 'pread')
  const strict = new PageHasher({ threads: 1, fileReads: 'mmap' })
  t.teardown(() => strict.close())
  await t.rejects(strict.hash(src, 'all'), /offset 100 is not a multiple of the page size/)
})

t.test("a deleted RAM file's mapping is released at the next job, so tmpfs can free it", async (t) => {
  const gone = ramFile('deleted-later')
  await hasher.hash(gone.src, 'all')
  const mapped = () => readFileSync('/proc/self/maps', 'utf8').includes(gone.path)
  t.ok(mapped(), 'mapped while in use')
  unlinkSync(gone.path)
  const other = ramFile('next')
  await hasher.hash(other.src, 'all')
  t.notOk(mapped(), 'no mapping of the deleted file is left')
})
