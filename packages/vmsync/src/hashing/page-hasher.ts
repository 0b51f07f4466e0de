// PageHasher: a worker_threads pool that hashes VM pages (XXH3-128, 16 bytes per page) in parallel.
// Hashing is the floor of sync pause time, so every core takes a contiguous share of the request and
// reads the memory source itself (file: positional reads into a reused chunk; shared: in place).
import { existsSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { type MemorySource, PAGE_SIZE } from '../vm/replicated-vm.js'
import { HASH_BYTES, type HashJob, type HashReply, type WorkerReady } from './messages.js'

export interface PageHasherOptions {
  /** Worker count; default os.availableParallelism(). */
  readonly threads?: number
  /** Page size in bytes; default PAGE_SIZE (4096). */
  readonly pageSize?: number
  /** Largest coalesced read from a file source; default 2 MiB. */
  readonly chunkBytes?: number
  /** Below this many pages per worker, fewer workers are used (a round trip costs ~50 µs). */
  readonly minPagesPerWorker?: number
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
    for (let i = 0; i < this.threads; i++) this.slots.push(this.spawn())
  }

  /**
   * Hashes `indices` (or every page) of `source`: HASH_BYTES per page, in order of `indices`.
   * Writes into `out` when given (it must hold at least that many bytes) and returns it.
   */
  hash(source: MemorySource, indices: Uint32Array | 'all', out?: Buffer): Promise<Buffer> {
    if (this.closed) return Promise.reject(new Error('PageHasher is closed'))
    const run = this.queue.then(() => this.run(source, indices, out))
    this.queue = run.catch(() => undefined)
    return run
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
        return
      }
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
    if (this.closed) throw new Error('PageHasher is closed')
    if (this.startupError !== null) throw new Error(`hash workers failed to start: ${this.startupError}`)
    const sourceBytes = source.kind === 'shared' ? source.buffer.byteLength : source.size
    const count = indices === 'all' ? Math.floor(sourceBytes / this.pageSize) : indices.length
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

    const workers = Math.min(this.slots.length, Math.max(1, Math.floor(count / this.minPagesPerWorker)))
    const share = Math.ceil(count / workers)
    const id = this.nextId++
    const shares: Promise<HashReply>[] = []
    for (let w = 0; w < workers; w++) {
      const from = w * share
      const to = Math.min(count, from + share)
      if (from >= to) break
      const slot = this.slots[w]
      const job: HashJob = {
        id,
        source,
        pageSize: this.pageSize,
        indices: this.indicesBuf,
        out: this.outBuf,
        from,
        to,
        all: indices === 'all',
        chunkBytes: this.chunkBytes,
      }
      shares.push(
        new Promise<HashReply>((resolve) => {
          slot.pending = resolve
          slot.worker.ref() // a job in flight keeps the process alive until it answers
          slot.worker.postMessage(job)
        }).finally(() => slot.worker.unref()),
      )
    }
    // WHY wait for every share even after a failure: the next call reuses the same buffers.
    const replies = await Promise.all(shares)
    const failed = replies.find((r) => !r.ok)
    if (failed !== undefined && !failed.ok) throw new Error(`page hashing failed: ${failed.error}`)
    result.set(new Uint8Array(this.outBuf, 0, bytes))
    return result.subarray(0, bytes)
  }
}
