// DirtyTracker that works on every kernel: hash every page of guest RAM and compare with the hash
// vector taken at the last reset(). Hashing is the pause-time floor, so it runs on vmsync's
// worker-thread PageHasher straight from the RAM file. The vector of the last scan is exposed
// (currentDigests) so the sync protocol does not hash the same pages a second time.
import type { DirtyTracker, MemorySource, ScanVector, TrackerDigests } from '@plover/vmsync'
import { VmNotPausedError } from '../memory/errors.js'

/** What the tracker needs from vmsync's PageHasher. */
export interface PageHashing {
  /**
   * One fixed-size digest per page, concatenated, in the order of `indices` (or of all pages);
   * written into `out` when given.
   */
  hash(source: MemorySource, indices: Uint32Array | 'all', out?: Buffer): Promise<Buffer>
  /**
   * Block-first scan of every page (PageHasher.scan), used when present: given the previous scan,
   * only blocks whose digest changed are hashed page by page.
   */
  scan?(source: MemorySource, previous?: ScanVector, out?: Buffer): Promise<ScanVector>
}

export interface HashScanTrackerOptions {
  readonly hasher: PageHashing
  readonly source: MemorySource
  readonly pageSize?: number
  readonly isPaused: () => boolean
  /**
   * Changes whenever guest RAM may have changed (the VM ran, or pages were written). While it
   * stays the same, a scan's vector is still exact and reset() adopts it instead of re-hashing.
   */
  readonly changeStamp?: () => number
}

export interface ScanStats {
  readonly pages: number
  readonly bytes: number
  readonly durationMs: number
  /** Bytes hashed per second. */
  readonly bytesPerSecond: number
  /** Blocks hashed page by page (changed since the previous scan); undefined without block scans. */
  readonly changedBlocks?: number
}

/**
 * The newest digest vector. `blocks` (block-first scans only) always describes the same contents
 * as `hashes`: a block whose pages were patched one by one is zeroed so the next scan re-hashes it.
 */
interface Latest {
  hashes: Buffer
  stamp: number | undefined
  written: Set<number>
  blocks?: { digests: Buffer; blockPages: number }
}

export class HashScanTracker implements DirtyTracker {
  readonly kind = 'hash-scan'
  readonly pageCount: number
  #baseline: Buffer | undefined
  /**
   * The last scan's vector, the change stamp it is exact for, and pages the host wrote since
   * (while the VM stayed paused): re-hashing just those brings the vector up to date.
   */
  #latest: Latest | undefined
  #lastScan: ScanStats | undefined
  #pool: Buffer[] = []

  constructor(private readonly options: HashScanTrackerOptions) {
    const pageSize = options.pageSize ?? 4096
    if (options.source.kind !== 'file' && options.source.kind !== 'shared')
      throw new Error('unknown memory source')
    const size = options.source.kind === 'file' ? options.source.size : options.source.buffer.byteLength
    this.pageCount = size / pageSize
  }

  /**
   * Digests of every page as of the last scan, if guest RAM cannot have changed since. The buffer
   * is reused: valid until the next collect()/reset().
   */
  get currentHashes(): Buffer | undefined {
    const latest = this.#latest
    if (!latest || latest.stamp === undefined || latest.stamp !== this.options.changeStamp?.())
      return undefined
    if (latest.written.size > 0) return undefined
    return latest.hashes
  }

  /**
   * The host changed guest RAM only by writing `indices` (the VM stayed paused), taking the change
   * stamp from `stampBefore` to `stampAfter`. If the last scan was exact at `stampBefore`, it stays
   * usable: the next reset()/collect() re-hashes just these pages instead of all of RAM. WHY it
   * matters: a backup writes the divergent pages and must reset its baseline before it acks, so a
   * full re-scan there sits in the primary's pause.
   */
  noteWritten(indices: Uint32Array, stampBefore: number, stampAfter: number): void {
    const latest = this.#latest
    if (!latest || latest.stamp === undefined || latest.stamp !== stampBefore) return
    latest.stamp = stampAfter
    for (const p of indices) latest.written.add(p)
  }

  /**
   * DirtyTracker.currentDigests: the vector of every page as RAM is now, with the hasher that made
   * it — the last scan's, after re-hashing the pages noted as written since, or a new scan. The VM
   * must be paused (undefined otherwise). The buffer is reused by later scans.
   */
  async currentDigests(): Promise<TrackerDigests | undefined> {
    if (!this.options.isPaused()) return undefined
    const digests = (await this.#patched()) ?? (await this.#scan())
    // A resume or write while hashing: the vector may not be RAM as it is.
    if (this.#latest?.hashes !== digests || this.#latest.stamp !== this.options.changeStamp?.())
      return undefined
    return { hasher: this.options.hasher, digests }
  }

  get digestBytes(): number | undefined {
    return this.#latest ? this.#latest.hashes.byteLength / this.pageCount : undefined
  }

  get lastScan(): ScanStats | undefined {
    return this.#lastScan
  }

  async reset(): Promise<void> {
    if (!this.options.isPaused()) throw new VmNotPausedError('HashScanTracker.reset')
    this.#baseline = (await this.#patched()) ?? (await this.#scan())
  }

  async collect(): Promise<Uint32Array> {
    if (!this.options.isPaused()) throw new VmNotPausedError('HashScanTracker.collect')
    const current = (await this.#patched()) ?? (await this.#scan())
    const baseline = this.#baseline
    // Without a baseline every page counts as changed: the first sync must be a full one.
    if (!baseline) return Uint32Array.from({ length: this.pageCount }, (_, i) => i)
    return diffDigests(baseline, current, this.pageCount)
  }

  /** The last scan's vector brought up to date by re-hashing the pages noted as written, if exact. */
  async #patched(): Promise<Buffer | undefined> {
    const latest = this.#latest
    const stamp = this.options.changeStamp?.()
    if (!latest || latest.stamp === undefined || latest.stamp !== stamp) return undefined
    if (latest.written.size === 0) return latest.hashes
    const indices = Uint32Array.from([...latest.written].sort((a, b) => a - b))
    // WHY a fresh vector when the baseline shares memory with the latest: the baseline must keep
    // the digests it was taken with (the pages' old contents).
    const base = this.#baseline
    let hashes = latest.hashes
    if (base && sameMemory(base, hashes)) {
      const spare = this.#pool.find((b) => !sameMemory(b, base))
      hashes = spare ?? Buffer.allocUnsafe(hashes.byteLength)
      if (!spare) this.#pool.push(hashes)
      latest.hashes.copy(hashes)
    }
    const digests = await this.options.hasher.hash(this.options.source, indices)
    if (this.options.changeStamp?.() !== stamp) return undefined // RAM moved on meanwhile
    const width = digests.byteLength / indices.length
    const blocks = latest.blocks
    for (let i = 0; i < indices.length; i++) {
      digests.copy(hashes, indices[i]! * width, i * width, (i + 1) * width)
      if (blocks) {
        const at = Math.floor(indices[i]! / blocks.blockPages) * width
        blocks.digests.fill(0, at, at + width)
      }
    }
    this.#latest = { hashes, stamp, written: new Set(), ...(blocks ? { blocks } : {}) }
    return hashes
  }

  // Two vectors are reused across syncs (baseline and latest): a fresh 1 MiB per scan would be
  // touched page by page, which costs more than the comparison.
  async #scan(): Promise<Buffer> {
    const stamp = this.options.changeStamp?.()
    const started = performance.now()
    // WHY compare memory, not objects: the hasher returns a fresh view of `out`, so the baseline
    // may be a different Buffer object over the very bytes we are about to overwrite.
    const baseline = this.#baseline
    const out = this.#pool.find((b) => !baseline || !sameMemory(b, baseline))
    const { hasher, source } = this.options
    let hashes: Buffer
    let blocks: Latest['blocks']
    let changedBlocks: number | undefined
    if (hasher.scan) {
      // The newest vector is the previous scan even when RAM moved on since: skipping is by content.
      const prev = this.#latest
      const previous = prev?.blocks && {
        pages: prev.hashes,
        blocks: prev.blocks.digests,
        blockPages: prev.blocks.blockPages,
        changedBlocks: 0,
      }
      const v = await hasher.scan(source, previous, out)
      hashes = v.pages
      blocks = { digests: v.blocks, blockPages: v.blockPages }
      changedBlocks = v.changedBlocks
    } else hashes = await hasher.hash(source, 'all', out)
    if (!out) this.#pool.push(hashes) // at most two: the baseline and the one being refilled
    const durationMs = performance.now() - started
    if (hashes.byteLength % this.pageCount !== 0 || hashes.byteLength === 0) {
      throw new Error(`hasher returned ${hashes.byteLength} bytes for ${this.pageCount} pages`)
    }
    const bytes = this.pageCount * (this.options.pageSize ?? 4096)
    this.#lastScan = {
      pages: this.pageCount,
      bytes,
      durationMs,
      bytesPerSecond: bytes / (durationMs / 1000),
      ...(changedBlocks !== undefined ? { changedBlocks } : {}),
    }
    this.#latest = { hashes, stamp, written: new Set(), ...(blocks ? { blocks } : {}) }
    return hashes
  }
}

function sameMemory(a: Uint8Array, b: Uint8Array): boolean {
  return a.buffer === b.buffer && a.byteOffset === b.byteOffset
}

/** Indices (ascending) of the pages whose digests differ between two equally long vectors. */
export function diffDigests(a: Uint8Array, b: Uint8Array, pages: number): Uint32Array {
  if (a.byteLength !== b.byteLength || a.byteLength % pages !== 0) {
    throw new Error(
      `digest vectors differ in size (${a.byteLength} vs ${b.byteLength}) or do not fit ${pages} pages`,
    )
  }
  const width = a.byteLength / pages
  const va = new DataView(a.buffer, a.byteOffset, a.byteLength)
  const vb = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const out = new Uint32Array(pages)
  let n = 0
  const words = width >> 2
  for (let p = 0; p < pages; p++) {
    const base = p * width
    let same = true
    for (let w = 0; w < words && same; w++) same = va.getUint32(base + w * 4) === vb.getUint32(base + w * 4)
    for (let k = words * 4; k < width && same; k++) same = a[base + k] === b[base + k]
    if (!same) out[n++] = p
  }
  return out.slice(0, n)
}
