// DirtyTracker over the kernel's soft-dirty bits of QEMU's mapping of the RAM file: reset() clears
// them for the whole QEMU process (`4` → /proc/PID/clear_refs), collect() reads pagemap bit 55 over
// the RAM range. Cost is 8 bytes of pagemap per guest page instead of hashing 4 KiB per page.
// Only guest writes made through QEMU's mapping are seen; our own pwrite()s into the file are not,
// which is fine because the sync protocol resets the tracker right after writing pages.
// Unverified on the development host: its kernel lacks CONFIG_MEM_SOFT_DIRTY (see probe.ts).
import { type FileHandle, open, readFile, writeFile } from 'node:fs/promises'
import type { DirtyTracker } from '@plover/vmsync'
import { VmNotPausedError } from '../memory/errors.js'
import { collectSoftDirty, PAGEMAP_ENTRY_BYTES } from './pagemap.js'
import { type FileSegment, fileSegments, parseMaps } from './proc-maps.js'

export interface SoftDirtyTrackerOptions {
  /** The QEMU process that maps the RAM file. */
  readonly pid: number
  readonly ramPath: string
  readonly ramOffset?: number
  readonly size: number
  readonly pageSize?: number
  readonly isPaused: () => boolean
  /** Where /proc lives; tests point it at recorded data. */
  readonly procRoot?: string
}

// 64 Ki entries = 512 KiB of pagemap per read, reused across collects.
const CHUNK_ENTRIES = 64 * 1024

export class SoftDirtyTracker implements DirtyTracker {
  readonly kind = 'soft-dirty'
  readonly #chunk = Buffer.allocUnsafe(CHUNK_ENTRIES * PAGEMAP_ENTRY_BYTES)
  readonly #pageSize: number

  private constructor(
    private readonly options: SoftDirtyTrackerOptions,
    private readonly segments: FileSegment[],
    private readonly pagemap: FileHandle,
  ) {
    this.#pageSize = options.pageSize ?? 4096
  }

  static async open(options: SoftDirtyTrackerOptions): Promise<SoftDirtyTracker> {
    const proc = `${options.procRoot ?? '/proc'}/${options.pid}`
    const maps = parseMaps(await readFile(`${proc}/maps`, 'utf8'))
    const segments = fileSegments(maps, options.ramPath, options.ramOffset ?? 0, options.size)
    const pagemap = await open(`${proc}/pagemap`, 'r')
    return new SoftDirtyTracker(options, segments, pagemap)
  }

  get pageCount(): number {
    return this.options.size / this.#pageSize
  }

  async reset(): Promise<void> {
    if (!this.options.isPaused()) throw new VmNotPausedError('SoftDirtyTracker.reset')
    await writeFile(`${this.options.procRoot ?? '/proc'}/${this.options.pid}/clear_refs`, '4')
  }

  async collect(): Promise<Uint32Array> {
    if (!this.options.isPaused()) throw new VmNotPausedError('SoftDirtyTracker.collect')
    const out = new Uint32Array(this.pageCount)
    let count = 0
    const ramOffset = this.options.ramOffset ?? 0
    for (const seg of this.segments) {
      const pages = seg.length / this.#pageSize
      const firstGuestPage = (seg.fileOffset - ramOffset) / this.#pageSize
      const firstVpage = seg.vaddr / this.#pageSize
      for (let done = 0; done < pages; done += CHUNK_ENTRIES) {
        const entries = Math.min(CHUNK_ENTRIES, pages - done)
        await this.#readFully((firstVpage + done) * PAGEMAP_ENTRY_BYTES, entries * PAGEMAP_ENTRY_BYTES)
        count = collectSoftDirty(this.#chunk, entries, firstGuestPage + done, out, count)
      }
    }
    // Segments are sorted by file offset and disjoint, so the indices are already ascending.
    return out.slice(0, count)
  }

  async close(): Promise<void> {
    await this.pagemap.close()
  }

  async #readFully(position: number, length: number): Promise<void> {
    let done = 0
    while (done < length) {
      const { bytesRead } = await this.pagemap.read(this.#chunk, done, length - done, position + done)
      if (bytesRead === 0) throw new Error(`short pagemap read at ${position + done}`)
      done += bytesRead
    }
  }
}
