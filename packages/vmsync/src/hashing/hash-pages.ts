// The hash of one page and the single-threaded loops the workers run. Kept apart from the pool so
// tests (and callers with a handful of pages) get the exact same function as a reference.
import { closeSync, openSync, readSync } from 'node:fs'
import { createRequire } from 'node:module'
import type { XXHash128 as XXHash128Type } from 'xxhash-addon'
import type { MemorySource } from '../vm/replicated-vm.js'
import { HASH_BYTES } from './messages.js'

// WHY createRequire: xxhash-addon is a CommonJS native addon.
const { XXHash128 } = createRequire(import.meta.url)('xxhash-addon') as { XXHash128: typeof XXHash128Type }

/** 128-bit XXH3 of one page. Never `new XXHash128()` without a seed: it segfaults in 2.1.0. */
export function hashPage(page: Uint8Array): Buffer {
  return XXHash128.hash(page as Buffer)
}

/** Page positions to hash: either explicit indices or the contiguous range [from, to). */
export interface PageSelection {
  readonly indices: Uint32Array | null
  readonly from: number
  readonly to: number
}

function pageAt(sel: PageSelection, pos: number): number {
  return sel.indices === null ? pos : sel.indices[pos]
}

function checkRange(page: number, pageCount: number): void {
  if (page >= pageCount)
    throw new RangeError(`page index ${page} out of range (memory has ${pageCount} pages)`)
}

/** Hashes selected pages of a shared source straight from its memory: no copy. */
export function hashShared(
  buffer: SharedArrayBuffer,
  pageSize: number,
  sel: PageSelection,
  out: Uint8Array,
  outBase = 0,
): void {
  const pageCount = Math.floor(buffer.byteLength / pageSize)
  for (let pos = sel.from; pos < sel.to; pos++) {
    const page = pageAt(sel, pos)
    checkRange(page, pageCount)
    // WHY a plain Uint8Array view: cheaper to create than Buffer.subarray, and the addon accepts it.
    out.set(hashPage(new Uint8Array(buffer, page * pageSize, pageSize)), (pos - outBase) * HASH_BYTES)
  }
}

/**
 * Hashes selected pages of a file source. Runs of adjacent pages are coalesced into one positional
 * read of at most `chunk.length` bytes, into the caller's reused chunk buffer.
 */
export function hashFile(
  source: Extract<MemorySource, { kind: 'file' }>,
  pageSize: number,
  sel: PageSelection,
  out: Uint8Array,
  chunk: Buffer,
  outBase = 0,
): void {
  const pageCount = Math.floor(source.size / pageSize)
  const maxPages = Math.max(1, Math.floor(chunk.length / pageSize))
  let fd: number
  try {
    fd = openSync(source.path, 'r')
  } catch (err) {
    throw new Error(`cannot open memory file ${source.path}: ${(err as Error).message}`)
  }
  try {
    let pos = sel.from
    while (pos < sel.to) {
      const first = pageAt(sel, pos)
      checkRange(first, pageCount)
      let run = 1
      while (run < maxPages && pos + run < sel.to && pageAt(sel, pos + run) === first + run) run++
      checkRange(first + run - 1, pageCount)
      const want = run * pageSize
      const at = source.offset + first * pageSize
      let got = 0
      while (got < want) {
        const n = readSync(fd, chunk, got, want - got, at + got)
        if (n === 0) break
        got += n
      }
      if (got < want) {
        throw new Error(
          `short read from ${source.path}: ${got} of ${want} bytes at offset ${at} (pages ${first}..${first + run - 1})`,
        )
      }
      for (let k = 0; k < run; k++) {
        const view = new Uint8Array(chunk.buffer, chunk.byteOffset + k * pageSize, pageSize)
        out.set(hashPage(view), (pos + k - outBase) * HASH_BYTES)
      }
      pos += run
    }
  } finally {
    closeSync(fd)
  }
}

/**
 * Single-threaded reference: 16 bytes per page in order of `indices`. For tests, tools and tiny
 * jobs where a worker round-trip costs more than the hashing.
 */
export function hashPagesSync(source: MemorySource, indices: Uint32Array | 'all', pageSize = 4096): Buffer {
  const total = Math.floor((source.kind === 'shared' ? source.buffer.byteLength : source.size) / pageSize)
  const sel: PageSelection =
    indices === 'all' ? { indices: null, from: 0, to: total } : { indices, from: 0, to: indices.length }
  const out = Buffer.alloc(sel.to * HASH_BYTES)
  if (source.kind === 'shared') hashShared(source.buffer, pageSize, sel, out)
  else
    hashFile(
      source,
      pageSize,
      sel,
      out,
      Buffer.allocUnsafe(Math.min(4 << 20, Math.max(pageSize, sel.to * pageSize))),
    )
  return out
}
