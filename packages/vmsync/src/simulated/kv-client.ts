// A client of the simulated KV service that talks to a VM directly (inject + 'frame-out'): for
// tests, the demo and benches. Matches responses to requests by (clientId, requestId).
import type { ReplicatedVm } from '../vm/replicated-vm.js'
import { decodeKvResponse, encodeKvRequest, KvOp, type KvResponse, KvStatus } from './kv-frame.js'

export class KvClient {
  private nextRequest = 1
  private readonly pending = new Map<
    number,
    { resolve: (r: KvResponse) => void; reject: (e: Error) => void }
  >()
  private readonly onFrame = (frame: Uint8Array) => {
    let res: KvResponse
    try {
      res = decodeKvResponse(frame)
    } catch {
      return
    }
    if (res.clientId !== this.clientId) return
    const p = this.pending.get(res.requestId)
    if (p === undefined) return
    this.pending.delete(res.requestId)
    p.resolve(res)
  }
  private readonly onExit = () => this.fail(new Error('VM exited'))

  constructor(
    private readonly vm: ReplicatedVm,
    readonly clientId = 1,
  ) {
    vm.on('frame-out', this.onFrame)
    vm.on('exit', this.onExit)
  }

  /** Sends one request; resolves with the matching response. */
  request(op: KvOp, key: string | Uint8Array, value?: string | Uint8Array): Promise<KvResponse> {
    const requestId = this.nextRequest++
    const frame = encodeKvRequest({ op, clientId: this.clientId, requestId, key, value })
    return new Promise<KvResponse>((resolve, reject) => {
      this.pending.set(requestId, { resolve, reject })
      this.vm.injectFrame(frame).catch((err: Error) => {
        this.pending.delete(requestId)
        reject(err)
      })
    })
  }

  async get(key: string): Promise<string | null> {
    const r = await this.request(KvOp.Get, key)
    if (r.status === KvStatus.NotFound) return null
    return this.ok(r, 'GET')
  }

  async set(key: string, value: string | Uint8Array): Promise<void> {
    this.ok(await this.request(KvOp.Set, key, value), 'SET')
  }

  async del(key: string): Promise<boolean> {
    const r = await this.request(KvOp.Del, key)
    if (r.status === KvStatus.NotFound) return false
    this.ok(r, 'DEL')
    return true
  }

  async incr(key: string, by = 1): Promise<number> {
    return Number(this.ok(await this.request(KvOp.Incr, key, String(by)), 'INCR'))
  }

  /** Detaches from the VM and rejects requests still waiting. */
  close(): void {
    this.vm.off('frame-out', this.onFrame)
    this.vm.off('exit', this.onExit)
    this.fail(new Error('client closed'))
  }

  private ok(r: KvResponse, what: string): string {
    if (r.status !== KvStatus.Ok) throw new Error(`${what} failed with status ${KvStatus[r.status]}`)
    return Buffer.from(r.value).toString()
  }

  private fail(err: Error): void {
    for (const p of this.pending.values()) p.reject(err)
    this.pending.clear()
  }
}
