// Does soft-dirty tracking work on this kernel? Checked on our own process, because Node cannot
// learn a buffer's virtual address: clear the bits, write a fresh buffer, count soft-dirty pages
// in the new private mappings, clear again and count again. A working kernel shows (almost) every
// written page dirty after the write and (almost) none after the clear. Kernels without
// CONFIG_MEM_SOFT_DIRTY accept the clear_refs write but never set bit 55.
import { open, readFile, writeFile } from 'node:fs/promises'
import { countPresent, countSoftDirty, PAGEMAP_ENTRY_BYTES } from './pagemap.js'
import { type MapsEntry, parseMaps } from './proc-maps.js'

export interface SoftDirtyProbeReport {
  readonly supported: boolean
  /** Why, in one sentence, for logs. */
  readonly reason: string
  readonly probePages: number
  /**
   * Present pages in the probe's mappings after the write: at least probePages shows the probe
   * looked at the right memory, so a zero soft-dirty count means the kernel, not the probe.
   */
  readonly presentAfterWrite: number
  /** Soft-dirty pages in the probe's mappings right after writing every probe page. */
  readonly dirtyAfterWrite: number
  /** Soft-dirty pages in the same mappings right after clearing. */
  readonly dirtyAfterClear: number
}

const PAGE = 4096
const PROBE_PAGES = 2048
// WHY 64 MiB with every 8th page touched: above glibc's largest mmap threshold (32 MiB), so the
// buffer always gets a mapping of its own (findable in maps) instead of a recycled heap chunk,
// while only PROBE_PAGES pages are actually touched.
const PROBE_BYTES = 64 << 20
const STRIDE = PROBE_BYTES / PROBE_PAGES

export async function probeSoftDirty(): Promise<SoftDirtyProbeReport> {
  const unsupported = (reason: string, counts?: Counts, dirtyAfterClear = 0): SoftDirtyProbeReport => ({
    supported: false,
    reason,
    probePages: PROBE_PAGES,
    presentAfterWrite: counts?.present ?? 0,
    dirtyAfterWrite: counts?.dirty ?? 0,
    dirtyAfterClear,
  })
  try {
    const before = parseMaps(await readFile('/proc/self/maps', 'utf8'))
    const probe = Buffer.allocUnsafeSlow(PROBE_BYTES)
    await writeFile('/proc/self/clear_refs', '4')
    touch(probe, 1)
    const after = parseMaps(await readFile('/proc/self/maps', 'utf8'))
    const ranges = newPrivateRanges(before, after, probe.byteLength)
    if (ranges.length === 0) return unsupported('could not locate the probe buffer in /proc/self/maps')
    const afterWrite = await countRanges(ranges)
    const dirtyAfterWrite = afterWrite.dirty
    await writeFile('/proc/self/clear_refs', '4')
    const dirtyAfterClear = (await countRanges(ranges)).dirty
    touch(probe, 2) // keeps the buffer alive (and mapped) until the counts are taken
    const worksAfterWrite = dirtyAfterWrite >= PROBE_PAGES * 0.9
    const clears = dirtyAfterClear <= PROBE_PAGES * 0.1
    if (worksAfterWrite && clears) {
      return {
        supported: true,
        reason: 'pagemap bit 55 follows writes and clear_refs',
        probePages: PROBE_PAGES,
        presentAfterWrite: afterWrite.present,
        dirtyAfterWrite,
        dirtyAfterClear,
      }
    }
    if (afterWrite.present < PROBE_PAGES) {
      return unsupported(
        'the probe buffer was not found resident in the scanned mappings',
        afterWrite,
        dirtyAfterClear,
      )
    }
    return unsupported(
      worksAfterWrite
        ? 'clear_refs does not clear pagemap bit 55'
        : 'pagemap bit 55 stays clear after writes (kernel without CONFIG_MEM_SOFT_DIRTY?)',
      afterWrite,
      dirtyAfterClear,
    )
  } catch (err) {
    return unsupported(`probe failed: ${(err as Error).message}`)
  }
}

function touch(buf: Buffer, value: number): void {
  for (let i = 0; i < buf.byteLength; i += STRIDE) buf[i] = value
}

// Private writable anonymous ranges that are new or grew and can hold the probe buffer.
function newPrivateRanges(
  before: MapsEntry[],
  after: MapsEntry[],
  minBytes: number,
): Array<[number, number]> {
  const old = new Set(before.map((e) => `${e.start}-${e.end}`))
  return after
    .filter((e) => e.perms.startsWith('rw') && e.perms[3] === 'p' && e.path === '')
    .filter((e) => !old.has(`${e.start}-${e.end}`) && e.end - e.start >= minBytes)
    .map((e) => [e.start, e.end])
}

interface Counts {
  present: number
  dirty: number
}

async function countRanges(ranges: Array<[number, number]>): Promise<Counts> {
  const fh = await open('/proc/self/pagemap', 'r')
  try {
    const counts: Counts = { present: 0, dirty: 0 }
    for (const [start, end] of ranges) {
      const entries = (end - start) / PAGE
      const buf = Buffer.alloc(entries * PAGEMAP_ENTRY_BYTES)
      await fh.read(buf, 0, buf.byteLength, (start / PAGE) * PAGEMAP_ENTRY_BYTES)
      counts.present += countPresent(buf, entries)
      counts.dirty += countSoftDirty(buf, entries)
    }
    return counts
  } finally {
    await fh.close()
  }
}
