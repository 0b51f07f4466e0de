// PageHasher: a worker_threads pool that hashes VM pages (XXH3-128, 16 bytes per page) in parallel.
// Hashing is the floor of sync pause time, so every core takes a contiguous share of the request and
// reads the memory source itself (file: from a read-only mapping, or positional reads into a reused
// chunk without the mapping addon; shared: in place).
import { existsSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { type MemorySource, PAGE_SIZE } from '../vm/replicated-vm.js'
import type { FileReads } from './mapped-memory.js'
import { HASH_BYTES, type HashJob, type HashReply, type WorkerReady } from './messages.js'

/** Digests of every page and of every block of pages, from one PageHasher.scan. */
export interface ScanVector {
  /** HASH_BYTES per page. */
  readonly pages: Buffer
  /** HASH_BYTES per block of `blockPages` pages (the last block may be shorter). */
  readonly blocks: Buffer
  readonly blockPages: number
  /** Blocks hashed page by page because their digest differed from the previous scan (or all). */
  readonly changedBlocks: number
}

/** Default pages per block of a scan: 64 KiB blocks cut native calls 16-fold. */
export const DEFAULT_SCAN_BLOCK_PAGES = 16

export interface PageHasherOptions {
  /** Worker count; default os.availableParallelism(). */
  readonly threads?: number
  /** Page size in bytes; default PAGE_SIZE (4096). */
  readonly pageSize?: number
  /** Largest coalesced read from a file source; default 2 MiB. */
  readonly chunkBytes?: number
  /** Below this many pages per worker, fewer workers are used (a round trip costs ~50 µs). */
  readonly minPagesPerWorker?: number
  /** Pages per block of scan(); default DEFAULT_SCAN_BLOCK_PAGES. */
  readonly scanBlockPages?: number
  /**
   * How a file source is read: 'auto' (default) hashes from a read-only memory mapping when the
   * optional @plover/mapped-file addon is built, else with pread; 'mmap' fails jobs without it;
   * 'pread' never maps.
   */
  readonly fileReads?: FileReads
}

interface Slot {
  worker: Worker
  /** Settles the share this worker currently runs. */
  pending: ((reply: HashReply) => void) | null
}

/** Parent flags a worker cannot take (they only make sense for the main entry). */
function workerExecArgv(): string[] {
  const out: string[] = []
  const argv = process.execArgv
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--input-type') i++
    else if (!argv[i].startsWith('--input-type=')) out.push(argv[i])
  }
  return out
}

/**
 * The worker script sits next to this module: hash-worker.js when running from dist, hash-worker.ts
 * when running from src under a TypeScript loader (the worker then needs the parent's flags, which
 * carry the loader's --import).
 */
function workerEntry(): { url: URL; execArgv: string[] } {
  const js = new URL('./hash-worker.js', import.meta.url)
  if (existsSync(fileURLToPath(js))) return { url: js, execArgv: workerExecArgv() }
  return { url: new URL('./hash-worker.ts', import.meta.url), execArgv: workerExecArgv() }
}

export class PageHasher {
  readonly threads: number
  readonly pageSize: number
  private readonly chunkBytes: number
  private readonly minPagesPerWorker: number
  private readonly slots: Slot[] = []
  private indicesBuf = new SharedArrayBuffer(0)
  private outBuf = new SharedArrayBuffer(0)
  private blocksBuf = new SharedArrayBuffer(0)
  private prevPagesBuf = new SharedArrayBuffer(0)
  private prevBlocksBuf = new SharedArrayBuffer(0)
  private readonly changedBuf = new SharedArrayBuffer(4)
  readonly scanBlockPages: number
  readonly fileReads: FileReads
  /** How the last job on a file source read it; undefined before one ran. */
  lastFileRead: 'mmap' | 'pread' | undefined
  /** Whether the workers can map files (from the first worker that started); undefined before. */
  mappedFiles: WorkerReady['mappedFiles'] | undefined
  /** WHY a chain: calls share the reused buffers above, so they run one after another. */
  private queue: Promise<unknown> = Promise.resolve()
  private nextId = 1
  private closed = false
  /** Set when a worker dies before coming online: respawning would only loop. */
  private startupError: string | null = null

  constructor(options: PageHasherOptions = {}) {
    this.threads = Math.max(1, Math.floor(options.threads ?? availableParallelism()))
    this.pageSize = options.pageSize ?? PAGE_SIZE
    this.chunkBytes = Math.max(this.pageSize, options.chunkBytes ?? 2 << 20)
    this.minPagesPerWorker = Math.max(1, options.minPagesPerWorker ?? 64)
    this.scanBlockPages = Math.max(1, Math.floor(options.scanBlockPages ?? DEFAULT_SCAN_BLOCK_PAGES))
    this.fileReads = options.fileReads ?? 'auto'
    for (let i = 0; i < this.threads; i++) this.slots.push(this.spawn())
  }

  /**
   * Hashes `indices` (or every page) of `source`: HASH_BYTES per page, in order of `indices`.
   * Writes into `out` when given (it must hold at least that many bytes) and returns it.
   */
  hash(source: MemorySource, indices: Uint32Array | 'all', out?: Buffer): Promise<Buffer> {
    return this.enqueue(() => this.run(source, indices, out))
  }

  /**
   * Digests of every page of `source` (as hash(source, 'all')) plus one per block of pages. With
   * the `previous` scan of the same source, a block whose digest did not change keeps its pages'
   * previous digests instead of hashing them again: a scan where little changed costs one native
   * call per block rather than per page. Writes the page digests into `out` when given.
   */
  scan(source: MemorySource, previous?: ScanVector, out?: Buffer): Promise<ScanVector> {
    return this.enqueue(() => this.runScan(source, previous, out))
  }

  /** Runs `job` after every earlier call (they share the reused buffers). */
  private enqueue<T>(job: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error('PageHasher is closed'))
    const run = this.queue.then(job)
    this.queue = run.catch(() => undefined)
    return run
  }

  /** Pages in `source`, once the pool is known to be usable. */
  private usablePages(source: MemorySource): number {
    if (this.closed) throw new Error('PageHasher is closed')
    if (this.startupError !== null) throw new Error(`hash workers failed to start: ${this.startupError}`)
    const sourceBytes = source.kind === 'shared' ? source.buffer.byteLength : source.size
    return Math.floor(sourceBytes / this.pageSize)
  }

  /** Terminates the workers. Idempotent; later hash() calls reject. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.queue
    await Promise.all(this.slots.map((s) => s.worker.terminate()))
  }

  private spawn(): Slot {
    const entry = workerEntry()
    const worker = new Worker(entry.url, { execArgv: entry.execArgv })
    const slot: Slot = { worker, pending: null }
    let ready = false // the worker loaded its modules (it says so before any reply)
    worker.unref() // idle workers must not keep the process alive
    worker.on('message', (reply: HashReply | WorkerReady) => {
      if ('ready' in reply) {
        ready = true
        this.mappedFiles ??= reply.mappedFiles
        return
      }
      if (reply.ok && reply.fileRead) this.lastFileRead = reply.fileRead
      const settle = slot.pending
      slot.pending = null
      settle?.(reply)
    })
    const fail = (message: string) => {
      const settle = slot.pending
      slot.pending = null
      settle?.({ id: 0, ok: false, error: message })
      if (!ready) {
        this.startupError ??= message
        return
      }
      // WHY respawn: a crashed worker must not leave the pool one thread short (or empty).
      if (!this.closed) {
        const i = this.slots.indexOf(slot)
        if (i >= 0) this.slots[i] = this.spawn()
      }
    }
    worker.on('error', (err) => fail(`hash worker failed: ${err.message}`))
    worker.on('exit', (code) => {
      if (!this.closed && this.slots.includes(slot)) fail(`hash worker exited with code ${code}`)
    })
    return slot
  }

  private async run(source: MemorySource, indices: Uint32Array | 'all', out?: Buffer): Promise<Buffer> {
    const pageCount = this.usablePages(source)
    const count = indices === 'all' ? pageCount : indices.length
    const bytes = count * HASH_BYTES
    const result = out ?? Buffer.allocUnsafe(bytes)
    if (result.length < bytes)
      throw new RangeError(`output buffer holds ${result.length} bytes, need ${bytes}`)
    if (count === 0) return result.subarray(0, 0)

    if (indices !== 'all') {
      if (this.indicesBuf.byteLength < indices.byteLength)
        this.indicesBuf = new SharedArrayBuffer(indices.byteLength)
      new Uint32Array(this.indicesBuf, 0, indices.length).set(indices)
    }
    if (this.outBuf.byteLength < bytes) this.outBuf = new SharedArrayBuffer(bytes)

    await this.fanOut(count, this.minPagesPerWorker, (id, from, to) => ({
      ...this.job(id, source, from, to, this.chunkBytes),
      all: indices === 'all',
    }))
    result.set(new Uint8Array(this.outBuf, 0, bytes))
    return result.subarray(0, bytes)
  }

  private async runScan(
    source: MemorySource,
    previous: ScanVector | undefined,
    out?: Buffer,
  ): Promise<ScanVector> {
    const pageCount = this.usablePages(source)
    const blockPages = this.scanBlockPages
    const blockCount = Math.ceil(pageCount / blockPages)
    const bytes = pageCount * HASH_BYTES
    const blockBytes = blockCount * HASH_BYTES
    const pages = out ?? Buffer.allocUnsafe(bytes)
    if (pages.length < bytes) throw new RangeError(`output buffer holds ${pages.length} bytes, need ${bytes}`)
    const usable =
      previous !== undefined &&
      previous.blockPages === blockPages &&
      previous.pages.length === bytes &&
      previous.blocks.length === blockBytes
    if (this.outBuf.byteLength < bytes) this.outBuf = new SharedArrayBuffer(bytes)
    if (this.blocksBuf.byteLength < blockBytes) this.blocksBuf = new SharedArrayBuffer(blockBytes)
    if (usable) {
      // Copied first: `out` may be the very memory of previous.pages.
      if (this.prevPagesBuf.byteLength < bytes) this.prevPagesBuf = new SharedArrayBuffer(bytes)
      if (this.prevBlocksBuf.byteLength < blockBytes) this.prevBlocksBuf = new SharedArrayBuffer(blockBytes)
      new Uint8Array(this.prevPagesBuf, 0, bytes).set(previous.pages)
      new Uint8Array(this.prevBlocksBuf, 0, blockBytes).set(previous.blocks)
    }
    const changed = new Int32Array(this.changedBuf)
    Atomics.store(changed, 0, 0)
    // WHY at least one block per read: the scan hashes whole blocks from the chunk.
    const chunkBytes = Math.max(this.chunkBytes, blockPages * this.pageSize)
    await this.fanOut(
      blockCount,
      Math.max(1, Math.floor(this.minPagesPerWorker / blockPages)),
      (id, from, to) => ({
        ...this.job(id, source, from, to, chunkBytes),
        all: true,
        scan: {
          blockPages,
          blocksOut: this.blocksBuf,
          previous: usable ? { blocks: this.prevBlocksBuf, pages: this.prevPagesBuf } : null,
          changedBlocks: this.changedBuf,
        },
      }),
    )
    pages.set(new Uint8Array(this.outBuf, 0, bytes))
    return {
      pages: pages.subarray(0, bytes),
      blocks: Buffer.from(new Uint8Array(this.blocksBuf, 0, blockBytes)),
      blockPages,
      changedBlocks: Atomics.load(changed, 0),
    }
  }

  /** The fields every job shares; `all` false unless the caller says otherwise. */
  private job(id: number, source: MemorySource, from: number, to: number, chunkBytes: number): HashJob {
    const { pageSize, indicesBuf: indices, outBuf: out } = this
    const fileReads = this.fileReads
    return { id, source, pageSize, indices, out, from, to, all: false, chunkBytes, fileReads }
  }

  /** Splits positions [0, count) into one contiguous share per worker and waits for all. */
  private async fanOut(
    count: number,
    minPerWorker: number,
    job: (id: number, from: number, to: number) => HashJob,
  ): Promise<void> {
    const workers = Math.min(this.slots.length, Math.max(1, Math.floor(count / minPerWorker)))
    const share = Math.ceil(count / workers)
    const id = this.nextId++
    const shares: Promise<HashReply>[] = []
    for (let w = 0; w < workers; w++) {
      const from = w * share
      const to = Math.min(count, from + share)
      if (from >= to) break
      const slot = this.slots[w]
      const msg = job(id, from, to)
      shares.push(
        new Promise<HashReply>((resolve) => {
          slot.pending = resolve
          slot.worker.ref() // a job in flight keeps the process alive until it answers
          slot.worker.postMessage(msg)
        }).finally(() => slot.worker.unref()),
      )
    }
    // WHY wait for every share even after a failure: the next call reuses the same buffers.
    const replies = await Promise.all(shares)
    const failed = replies.find((r) => !r.ok)
    if (failed !== undefined && !failed.ok) throw new Error(`page hashing failed: ${failed.error}`)
  }
}
