// Pagemap and maps parsing on data recorded from a real QEMU (see test/fixtures/README.md), plus
// synthesized soft-dirty bits: this host's kernel cannot produce them.
import { readFileSync } from 'node:fs'
import t from 'tap'
import {
  collectSoftDirty,
  countPresent,
  countSoftDirty,
  decodePagemapEntry,
  PAGEMAP_ENTRY_BYTES,
} from '../../src/dirty/pagemap.js'
import { fileSegments, parseMaps } from '../../src/dirty/proc-maps.js'

const fixture = (name: string) => new URL(`../fixtures/${name}`, import.meta.url)
const RAM = '/dev/shm/rec-test.ram'
const RAM_BYTES = 64 << 20
const recorded = readFileSync(fixture('qemu-ram-pagemap.bin'))
const ENTRIES = recorded.byteLength / PAGEMAP_ENTRY_BYTES

t.test('decodes recorded entries of a shared file mapping', async (t) => {
  t.equal(ENTRIES, RAM_BYTES / 4096)
  let present = 0
  const odd: string[] = []
  for (let i = 0; i < ENTRIES; i++) {
    const e = decodePagemapEntry(recorded, i)
    if (!e.present) {
      if (e.pfn !== 0n) odd.push(`absent page ${i} has a PFN`)
      continue
    }
    present++
    if (!e.fileOrShared) odd.push(`present page ${i} is not a file page`)
    if (e.pfn === 0n) odd.push(`present page ${i} has no PFN (recorded as root)`)
    if (e.softDirty) odd.push(`page ${i} is soft-dirty on a kernel that cannot track it`)
  }
  t.same(odd, [])
  t.ok(present > 0, 'SeaBIOS touched some RAM pages')
  t.equal(countPresent(recorded, ENTRIES), present)
  t.equal(countSoftDirty(recorded, ENTRIES), 0)
})

t.test('finds synthesized soft-dirty bits and nothing else', async (t) => {
  const data = Buffer.from(recorded)
  const dirty = [0, 1, 17, 4095, 4096, ENTRIES - 1]
  for (const i of dirty) data[i * 8 + 6] |= 0x80 // byte 6, bit 7 = bit 55 of the little-endian u64
  t.ok(decodePagemapEntry(data, 17).softDirty)
  t.equal(
    decodePagemapEntry(data, 17).present,
    decodePagemapEntry(recorded, 17).present,
    'other bits unchanged',
  )
  t.equal(countSoftDirty(data, ENTRIES), dirty.length)
  const out = new Uint32Array(ENTRIES)
  const n = collectSoftDirty(data, ENTRIES, 1000, out, 0)
  t.same(
    Array.from(out.subarray(0, n)),
    dirty.map((i) => i + 1000),
  )
  t.throws(() => collectSoftDirty(data, ENTRIES + 1, 0, out, 0), RangeError)
})

t.test('parses a recorded QEMU maps file and locates the RAM file', async (t) => {
  const maps = parseMaps(readFileSync(fixture('qemu-maps.txt'), 'utf8'))
  t.ok(maps.length > 100)
  const ram = maps.filter((e) => e.path === RAM)
  t.equal(ram.length, 1)
  t.equal(ram[0].perms, 'rw-s')
  t.equal(ram[0].end - ram[0].start, RAM_BYTES)
  const segs = fileSegments(maps, RAM, 0, RAM_BYTES)
  t.same(segs, [{ vaddr: ram[0].start, fileOffset: 0, length: RAM_BYTES }])
  const window = fileSegments(maps, RAM, 4096, 8192)
  t.same(window, [{ vaddr: ram[0].start + 4096, fileOffset: 4096, length: 8192 }], 'clipped to the window')
  t.throws(() => fileSegments(maps, RAM, 0, RAM_BYTES + 4096), /mapped shared only up to/)
  t.throws(() => fileSegments(maps, '/dev/shm/other.ram', 0, 4096), /mapped shared only up to/)
  t.throws(() => parseMaps('not a maps line\n'), /unparsable/)
})

t.test('joins a mapping split by mprotect and accepts a deleted file', async (t) => {
  const text = [
    '7f0000000000-7f0000100000 rw-s 00000000 00:1b 6    /dev/shm/x.ram (deleted)',
    '7f0000100000-7f0000200000 rw-s 00100000 00:1b 6    /dev/shm/x.ram (deleted)',
    '7f0000200000-7f0000300000 rw-p 00200000 00:1b 6    /dev/shm/x.ram (deleted)',
    '7f1000000000-7f1000001000 rw-p 00000000 00:00 0 ',
  ].join('\n')
  const maps = parseMaps(text)
  t.equal(maps[3].path, '')
  t.same(fileSegments(maps, '/dev/shm/x.ram', 0, 0x200000), [
    { vaddr: 0x7f0000000000, fileOffset: 0, length: 0x100000 },
    { vaddr: 0x7f0000100000, fileOffset: 0x100000, length: 0x100000 },
  ])
  t.throws(
    () => fileSegments(maps, '/dev/shm/x.ram', 0, 0x300000),
    /up to file offset 2097152/,
    'private part is not the RAM',
  )
})
