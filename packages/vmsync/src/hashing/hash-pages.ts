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

/**
 * Hashes selected pages straight from memory that holds the whole source (a SharedArrayBuffer, or
 * a mapping of the RAM file): no copy.
 */
export function hashView(
  mem: Uint8Array,
  pageSize: number,
  sel: PageSelection,
  out: Uint8Array,
  outBase = 0,
): void {
  const pageCount = Math.floor(mem.byteLength / pageSize)
  for (let pos = sel.from; pos < sel.to; pos++) {
    const page = pageAt(sel, pos)
    checkRange(page, pageCount)
    // WHY a plain Uint8Array view: cheaper to create than Buffer.subarray, and the addon accepts it.
    const view = new Uint8Array(mem.buffer, mem.byteOffset + page * pageSize, pageSize)
    out.set(hashPage(view), (pos - outBase) * HASH_BYTES)
  }
}

/** Runs `fn` on a read-only descriptor of the source's file, closed afterwards. */
function withMemoryFile<T>(source: Extract<MemorySource, { kind: 'file' }>, fn: (fd: number) => T): T {
  let fd: number
  try {
    fd = openSync(source.path, 'r')
  } catch (err) {
    throw new Error(`cannot open memory file ${source.path}: ${(err as Error).message}`)
  }
  try {
    return fn(fd)
  } finally {
    closeSync(fd)
  }
}

/** Reads `want` bytes at `at` into the start of `chunk`, or throws naming `what()`. */
function readFully(fd: number, chunk: Buffer, want: number, at: number, what: () => string): void {
  let got = 0
  while (got < want) {
    const n = readSync(fd, chunk, got, want - got, at + got)
    if (n === 0) break
    got += n
  }
  if (got < want) throw new Error(`short read from ${what()}: ${got} of ${want} bytes at offset ${at}`)
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
  withMemoryFile(source, (fd) => {
    let pos = sel.from
    while (pos < sel.to) {
      const first = pageAt(sel, pos)
      checkRange(first, pageCount)
      let run = 1
      while (run < maxPages && pos + run < sel.to && pageAt(sel, pos + run) === first + run) run++
      checkRange(first + run - 1, pageCount)
      const want = run * pageSize
      const at = source.offset + first * pageSize
      readFully(fd, chunk, want, at, () => `${source.path} (pages ${first}..${first + run - 1})`)
      for (let k = 0; k < run; k++) {
        const view = new Uint8Array(chunk.buffer, chunk.byteOffset + k * pageSize, pageSize)
        out.set(hashPage(view), (pos + k - outBase) * HASH_BYTES)
      }
      pos += run
    }
  })
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
  if (source.kind === 'shared') hashView(new Uint8Array(source.buffer), pageSize, sel, out)
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

/** What a block-first scan compares against and writes to (all views over shared memory). */
export interface ScanTarget {
  readonly blockPages: number
  /** HASH_BYTES per page, every page of the source. */
  readonly pages: Uint8Array
  /** HASH_BYTES per block. */
  readonly blocks: Uint8Array
  readonly previous: { readonly blocks: Uint8Array; readonly pages: Uint8Array } | null
}

function sameDigest(a: Uint8Array, ai: number, b: Uint8Array, bi: number): boolean {
  for (let k = 0; k < HASH_BYTES; k++) if (a[ai + k] !== b[bi + k]) return false
  return true
}

/**
 * One block of a block-first scan. WHY blocks first: one native call per 16 pages instead of one
 * per page (the per-call cost, not the hashing, dominates a 4 KiB page), and only blocks whose
 * digest changed since the previous scan are hashed page by page. Returns whether it changed.
 */
function scanBlock(
  data: Uint8Array,
  block: number,
  firstPage: number,
  pageSize: number,
  t: ScanTarget,
): boolean {
  const at = block * HASH_BYTES
  t.blocks.set(hashPage(data), at)
  const n = data.byteLength / pageSize
  const prev = t.previous
  if (prev && sameDigest(t.blocks, at, prev.blocks, at)) {
    const from = firstPage * HASH_BYTES
    t.pages.set(prev.pages.subarray(from, from + n * HASH_BYTES), from)
    return false
  }
  for (let k = 0; k < n; k++) {
    const page = new Uint8Array(data.buffer, data.byteOffset + k * pageSize, pageSize)
    t.pages.set(hashPage(page), (firstPage + k) * HASH_BYTES)
  }
  return true
}

/** Block-first scan of blocks [fromBlock, toBlock) of memory holding the whole source. Returns blocks changed. */
export function scanView(
  mem: Uint8Array,
  pageSize: number,
  fromBlock: number,
  toBlock: number,
  t: ScanTarget,
): number {
  const pageCount = Math.floor(mem.byteLength / pageSize)
  let changed = 0
  for (let b = fromBlock; b < toBlock; b++) {
    const first = b * t.blockPages
    const n = Math.min(t.blockPages, pageCount - first)
    const block = new Uint8Array(mem.buffer, mem.byteOffset + first * pageSize, n * pageSize)
    if (scanBlock(block, b, first, pageSize, t)) changed++
  }
  return changed
}

/**
 * Block-first scan of blocks [fromBlock, toBlock) of a file source, reading whole runs of blocks
 * into the caller's chunk (at least one block long). Returns blocks changed.
 */
export function scanFile(
  source: Extract<MemorySource, { kind: 'file' }>,
  pageSize: number,
  fromBlock: number,
  toBlock: number,
  t: ScanTarget,
  chunk: Buffer,
): number {
  const pageCount = Math.floor(source.size / pageSize)
  const blockBytes = t.blockPages * pageSize
  const perRead = Math.floor(chunk.length / blockBytes)
  if (perRead < 1) throw new RangeError(`scan chunk of ${chunk.length} bytes is smaller than a block`)
  return withMemoryFile(source, (fd) => {
    let changed = 0
    for (let b = fromBlock; b < toBlock; b += perRead) {
      const firstPage = b * t.blockPages
      const pages = Math.min(perRead * t.blockPages, pageCount - firstPage, (toBlock - b) * t.blockPages)
      const want = pages * pageSize
      const at = source.offset + firstPage * pageSize
      readFully(fd, chunk, want, at, () => source.path)
      for (let k = 0; k * t.blockPages < pages; k++) {
        const n = Math.min(t.blockPages, pages - k * t.blockPages)
        const view = new Uint8Array(chunk.buffer, chunk.byteOffset + k * blockBytes, n * pageSize)
        if (scanBlock(view, b + k, firstPage + k * t.blockPages, pageSize, t)) changed++
      }
    }
    return changed
  })
}
