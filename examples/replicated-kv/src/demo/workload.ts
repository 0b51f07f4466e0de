// The demo's client workload: `workers` concurrent loops on one pipelined connection, each
// doing SETs of fresh keys with unique values and GETs of keys it already saw acknowledged.
// A SET is retried (same key, same value) until acknowledged, so there is never an unknown
// outcome to reason about; every acknowledged write is recorded and later read back.
// A GET that returns anything but the acknowledged value is counted as a stale read.
import { KvOp, KvStatus } from '@plover/vmsync'
import type { KvClusterClient } from '../client/kv-cluster-client.js'

export interface WorkloadStats {
  sets: number
  gets: number
  /** GETs of an acknowledged key that returned another value or nothing. */
  staleReads: number
  /** Operations that failed for good (retry deadline passed, or a non-Ok status). */
  failed: number
  /** Longest time one operation took from first try to answer, ms (includes failover). */
  maxOpMs: number
}

export class Workload {
  /** Every write the client saw acknowledged: key -> value. */
  readonly acked = new Map<string, string>()
  readonly stats: WorkloadStats = { sets: 0, gets: 0, staleReads: 0, failed: 0, maxOpMs: 0 }
  readonly errors: string[] = []
  private stopping = false
  private running: Promise<void> | undefined

  constructor(
    private readonly client: KvClusterClient,
    private readonly o: { workers: number; retryMs: number; tag: string },
  ) {}

  get ops(): number {
    return this.stats.sets + this.stats.gets
  }

  start(): void {
    this.running = Promise.all(Array.from({ length: this.o.workers }, (_, w) => this.worker(w))).then(
      () => {},
    )
  }

  /** Lets every worker finish its current operation (retrying if it must), then resolves. */
  async stop(): Promise<void> {
    this.stopping = true
    await this.running
  }

  /** Error path: no new operations; the caller closes the client, failing those in flight. */
  halt(): void {
    this.stopping = true
  }

  private async worker(w: number): Promise<void> {
    const mine: string[] = []
    let n = 0
    while (!this.stopping) {
      const t0 = Date.now()
      try {
        if (mine.length > 0 && Math.random() < 0.5) {
          const key = mine[Math.floor(Math.random() * mine.length)]
          const r = await this.client.call(KvOp.Get, key, undefined, t0 + this.o.retryMs)
          this.stats.gets++
          const got = r.status === KvStatus.Ok ? Buffer.from(r.value).toString() : undefined
          if (got !== this.acked.get(key)) {
            this.stats.staleReads++
            this.note(`GET ${key}: expected ${this.acked.get(key)}, got ${got ?? KvStatus[r.status]}`)
          }
        } else {
          const key = `${this.o.tag}-w${w}-${n}`
          const value = `v-${this.o.tag}-${w}-${n}-${Math.random().toString(36).slice(2, 10)}`
          n++
          const r = await this.client.call(KvOp.Set, key, value, t0 + this.o.retryMs)
          if (r.status !== KvStatus.Ok) throw new Error(`SET ${key}: status ${KvStatus[r.status]}`)
          this.acked.set(key, value)
          mine.push(key)
          this.stats.sets++
        }
      } catch (err) {
        this.stats.failed++
        this.note((err as Error).message)
        // Never spin: a failure that comes back at once must not starve the event loop.
        await new Promise((r) => setTimeout(r, 10))
      }
      this.stats.maxOpMs = Math.max(this.stats.maxOpMs, Date.now() - t0)
    }
  }

  private note(msg: string): void {
    if (this.errors.length < 20) this.errors.push(msg)
  }
}

/** Reads every acknowledged key back; returns the keys whose value is missing or different. */
export async function verifyAcked(
  client: KvClusterClient,
  acked: ReadonlyMap<string, string>,
  opts: { concurrency: number; retryMs: number },
): Promise<{ checked: number; lost: string[] }> {
  const keys = [...acked.keys()]
  const lost: string[] = []
  let next = 0
  const worker = async () => {
    while (next < keys.length) {
      const key = keys[next++]
      const r = await client.call(KvOp.Get, key, undefined, Date.now() + opts.retryMs)
      const got = r.status === KvStatus.Ok ? Buffer.from(r.value).toString() : undefined
      if (got !== acked.get(key)) lost.push(key)
    }
  }
  await Promise.all(Array.from({ length: opts.concurrency }, worker))
  return { checked: keys.length, lost }
}
