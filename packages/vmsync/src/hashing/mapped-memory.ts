// A hash worker's view of a file memory source through a read-only memory mapping, kept across
// jobs. WHY: a full scan that preads the guest's RAM file spends about half its time copying it;
// hashing from a mapping of the same file skips the copy. The mapping comes from the optional
// native package @plover/mapped-file; without it, workers read with pread as before.
import { statSync } from 'node:fs'
import type { FileMapping } from '@plover/mapped-file'
import type { MemorySource } from '../vm/replicated-vm.js'

/** How workers read a file source: 'auto' maps it when @plover/mapped-file is built, else preads. */
export type FileReads = 'auto' | 'mmap' | 'pread'

type FileSource = Extract<MemorySource, { kind: 'file' }>
type MapFile = (path: string, offset: number, length: number) => FileMapping

/** Whether this thread can map files, and why not. Loaded once per worker. */
export async function loadMapper(): Promise<{ mapFile: MapFile } | { reason: string }> {
  try {
    const m = await import('@plover/mapped-file')
    const support = m.mappedFileSupport()
    return support.available ? { mapFile: m.mapFile } : { reason: support.reason }
  } catch (err) {
    return { reason: `@plover/mapped-file is not installed (${(err as Error).message.split('\n')[0]})` }
  }
}

/** Which file a name stood for. WHY birth time too: ext4 reuses a deleted file's inode number at once. */
interface FileId {
  readonly dev: number
  readonly ino: number
  readonly birthtimeMs: number
}

const sameFile = (a: FileId, b: FileId) =>
  a.dev === b.dev && a.ino === b.ino && a.birthtimeMs === b.birthtimeMs

interface Cached extends FileId {
  readonly mapping: FileMapping
}

// WHY a small bound: a replica maps one RAM file (two during a standby swap); tests map many.
const MAX_CACHED = 4

/** Mappings by source, reused while the file at that path is the same file. */
export class MappedMemory {
  private readonly cache = new Map<string, Cached>()

  constructor(private readonly mapFile: MapFile) {}

  /**
   * The source's bytes. Throws when the file is gone or shorter than the source says: checked at
   * every call, because a mapped page beyond the end of a shrunken file would raise SIGBUS.
   */
  view(source: FileSource): Uint8Array {
    const key = `${source.path}\0${source.offset}\0${source.size}`
    let st: FileId & { size: number }
    try {
      st = statSync(source.path)
    } catch (err) {
      this.drop(key)
      throw new Error(`cannot open memory file ${source.path}: ${(err as Error).message}`)
    }
    if (st.size < source.offset + source.size) {
      this.drop(key)
      throw new Error(
        `memory file ${source.path} holds ${st.size} bytes, the source needs ${source.offset + source.size}`,
      )
    }
    this.sweep(key)
    const hit = this.cache.get(key)
    if (hit && sameFile(hit, st)) return hit.mapping.bytes
    this.drop(key) // another file now has that name (a fresh guest): map the new one
    const mapping = this.mapFile(source.path, source.offset, source.size)
    this.cache.set(key, { mapping, dev: st.dev, ino: st.ino, birthtimeMs: st.birthtimeMs })
    if (this.cache.size > MAX_CACHED) this.drop(this.cache.keys().next().value as string)
    return mapping.bytes
  }

  /**
   * Unmaps the other sources whose file is gone or was replaced. WHY: a mapping keeps a deleted
   * RAM file's memory allocated (tmpfs frees it only at the last unmap), and a VM's RAM file is
   * deleted when it closes.
   */
  private sweep(except: string): void {
    for (const [key, c] of this.cache) {
      if (key === except) continue
      try {
        if (sameFile(c, statSync(c.mapping.path))) continue
      } catch {}
      this.drop(key)
    }
  }

  /** Unmaps everything. */
  close(): void {
    for (const key of [...this.cache.keys()]) this.drop(key)
  }

  private drop(key: string): void {
    this.cache.get(key)?.mapping.close()
    this.cache.delete(key)
  }
}
