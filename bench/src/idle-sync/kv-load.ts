// Closed-loop clients of the simulated KV service: each sends a request, waits for its answer
// (on a replicated primary: the output-committed answer), then sends the next. The same seeded
// mix for every policy, so the policies see the same workload.
import { decodeKvResponse, encodeKvRequest, KvOp, type SimulatedVm, type VmReplica } from '@plover/vmsync'

/** Where requests go and answers come from. */
export interface KvEndpoint {
  send(frame: Uint8Array): void
  /** Subscribes to answer frames; returns the unsubscribe function. */
  onAnswer(fn: (frame: Uint8Array) => void): () => void
}

/** Through the replicated primary: input via the log, answers released by the output guard. */
export function replicaEndpoint(primary: VmReplica): KvEndpoint {
  return {
    send: (f) => primary.pushInput(f),
    onAnswer: (fn) => {
      primary.on('release', fn)
      return () => primary.off('release', fn)
    },
  }
}

/** Straight to an unreplicated VM: the anchor. */
export function bareEndpoint(vm: SimulatedVm): KvEndpoint {
  return {
    send: (f) => void vm.injectFrame(f),
    onAnswer: (fn) => {
      vm.on('frame-out', fn)
      return () => vm.off('frame-out', fn)
    },
  }
}

export interface LoadOptions {
  readonly clients: number
  readonly keys: number
  /** Fraction of requests that are SETs; the rest are GETs. */
  readonly setRatio: number
  readonly maxValueBytes: number
  readonly seed: number
}

export interface LoadResult {
  readonly completed: number
  readonly seconds: number
  readonly opsPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
}

export class KvLoad {
  private readonly waiting = new Map<number, (atMs: number) => void>()
  private nextId = 1
  private running = false
  private rand: () => number
  private readonly latencies: number[] = []
  private readonly unsubscribe: () => void

  constructor(
    private readonly endpoint: KvEndpoint,
    private readonly o: LoadOptions,
  ) {
    this.rand = mulberry32(o.seed)
    this.unsubscribe = endpoint.onAnswer((f) => {
      const r = decodeKvResponse(f)
      this.waiting.get(r.requestId)?.(performance.now())
      this.waiting.delete(r.requestId)
    })
  }

  /** Runs the clients for `seconds`; returns throughput and latency of completed requests. */
  async run(seconds: number): Promise<LoadResult> {
    this.running = true
    const t0 = performance.now()
    const loops = Array.from({ length: this.o.clients }, () => this.client())
    await new Promise((r) => setTimeout(r, seconds * 1000))
    this.running = false
    const elapsed = (performance.now() - t0) / 1000
    const done = this.latencies.length
    // In-flight requests complete at the next sync; not waited for (they are not counted).
    void Promise.allSettled(loops)
    const sorted = [...this.latencies].sort((a, b) => a - b)
    const q = (p: number) =>
      sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : 0
    return { completed: done, seconds: elapsed, opsPerSec: done / elapsed, p50Ms: q(0.5), p99Ms: q(0.99) }
  }

  close(): void {
    this.running = false
    this.unsubscribe()
  }

  private async client(): Promise<void> {
    while (this.running) {
      const id = this.nextId++
      const key = `key:${Math.floor(this.rand() * this.o.keys)}`
      const isSet = this.rand() < this.o.setRatio
      const value = isSet ? 'v'.repeat(1 + Math.floor(this.rand() * this.o.maxValueBytes)) : undefined
      const sentAt = performance.now()
      const answered = new Promise<number>((resolve) => this.waiting.set(id, resolve))
      this.endpoint.send(
        encodeKvRequest({ op: isSet ? KvOp.Set : KvOp.Get, clientId: 1, requestId: id, key, value }),
      )
      const at = await answered
      if (this.running) this.latencies.push(at - sentAt)
    }
  }
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}
