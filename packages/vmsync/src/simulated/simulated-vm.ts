// SimulatedVm: the embedded ReplicatedVm. A key-value service runs "inside" paged guest memory;
// a CPU loop executes queued frames a bounded batch per event-loop turn while running. All service
// state is in guest pages + device state, so overwriting both makes a backup continue exactly as
// the primary would.
import { EventEmitter } from 'eventemitter3'
import { hashPage } from '../hashing/hash-pages.js'
import type {
  DirtyTracker,
  MemorySource,
  ReplicatedVm,
  ReplicatedVmEvents,
  VmRunState,
} from '../vm/replicated-vm.js'
import { PAGE_SIZE } from '../vm/replicated-vm.js'
import { decodeDeviceState, encodeDeviceState } from './device-state.js'
import { formatGuest, STATS } from './guest-layout.js'
import { GuestMemory } from './guest-memory.js'
import { decodeKvRequest } from './kv-frame.js'
import { entries, type GuestEnv, serveFrame, timerTick } from './kv-service.js'
import { Noise, type NoiseOptions } from './noise.js'

export interface SimulatedVmOptions extends NoiseOptions {
  /** Guest RAM in pages of 4 KiB; default 16384 (64 MiB). */
  readonly pageCount?: number
  /** Frames executed per event-loop turn; default 256. */
  readonly framesPerTurn?: number
  /** Guest timer period in ms (dirties the kernel page while running); 0 disables. Default 10. */
  readonly tickMs?: number
  /**
   * No nondeterminism at all: logical clock, no allocation swaps, no timer. Two instances fed the
   * same frames end byte-identical. For tests that need exact equality.
   */
  readonly deterministic?: boolean
  /** Host clock in ms; default Date.now. */
  readonly now?: () => number
}

/** Activity counters for idle detection; all monotonic. */
export interface SimulatedVmActivity {
  readonly framesIn: number
  readonly framesOut: number
  readonly executed: number
  readonly pending: number
  readonly cpuTimeMs: number
}

export class SimulatedVm extends EventEmitter<ReplicatedVmEvents> implements ReplicatedVm {
  readonly pageSize = PAGE_SIZE
  readonly pageCount: number
  readonly memorySource: MemorySource
  /** Write-barrier dirty tracking (exact: every guest store marks its page). */
  readonly dirtyTracker: DirtyTracker

  private readonly mem: GuestMemory
  private readonly noise: Noise
  private readonly deterministic: boolean
  private readonly framesPerTurn: number
  private readonly tickMs: number
  private readonly now: () => number
  private readonly env: GuestEnv

  private state: VmRunState = 'paused'
  // Device state (exported/imported): clock offset, counters, RX queue.
  private clockOffsetMs: number
  private framesIn = 0
  private framesOut = 0
  private executed = 0
  private rx: Uint8Array[] = []
  private rxHead = 0

  // Host-side accounting, not guest state.
  private cpuNs = 0
  private turnScheduled = false
  private timer: NodeJS.Timeout | null = null
  private drainWaiters: { resolve: () => void; reject: (e: Error) => void }[] = []

  constructor(options: SimulatedVmOptions = {}) {
    super()
    this.pageCount = options.pageCount ?? 16384
    this.mem = new GuestMemory(this.pageCount)
    this.memorySource = { kind: 'shared', buffer: this.mem.buffer }
    this.noise = new Noise(options)
    this.deterministic = options.deterministic ?? false
    this.framesPerTurn = Math.max(1, options.framesPerTurn ?? 256)
    this.tickMs = this.deterministic ? 0 : (options.tickMs ?? 10)
    this.now = options.now ?? Date.now
    // WHY a random offset: two hosts' clocks never agree exactly; it is device state like a TSC offset.
    this.clockOffsetMs = this.deterministic ? 0 : this.noise.next() * 50
    this.env = {
      clockMs: () =>
        this.deterministic ? this.executed : this.now() + this.clockOffsetMs + this.noise.jitterMs(),
      swapAllocation: () => !this.deterministic && this.noise.swapAllocation(),
    }
    formatGuest(this.mem, this.env.clockMs())
    const mem = this.mem
    this.dirtyTracker = {
      collect: async () => {
        this.requirePaused('collect dirty pages')
        return mem.dirtyPages()
      },
      reset: async () => {
        this.requirePaused('reset dirty tracking')
        mem.clearDirty()
      },
    }
  }

  get runState(): VmRunState {
    return this.state
  }

  /** A fresh VM starts paused (like a VM created for an incoming sync); call resume() to run it. */
  async pause(): Promise<void> {
    this.requireAlive('pause')
    if (this.state === 'paused') return
    this.state = 'paused'
    this.stopTimer()
  }

  async resume(): Promise<void> {
    this.requireAlive('resume')
    if (this.state === 'running') return
    this.state = 'running'
    if (this.tickMs > 0) {
      this.timer = setInterval(() => this.tick(), this.tickMs)
      this.timer.unref()
    }
    this.schedule()
  }

  async readPages(indices: Uint32Array, dst: Uint8Array): Promise<void> {
    this.requireAlive('read pages')
    this.checkPages(indices, dst)
    for (let i = 0; i < indices.length; i++) {
      const at = indices[i] * PAGE_SIZE
      dst.set(this.mem.bytes.subarray(at, at + PAGE_SIZE), i * PAGE_SIZE)
    }
  }

  async writePages(indices: Uint32Array, src: Uint8Array): Promise<void> {
    this.requirePaused('write pages')
    this.checkPages(indices, src)
    for (let i = 0; i < indices.length; i++) {
      this.mem.write(indices[i] * PAGE_SIZE, src.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE))
    }
  }

  async exportDeviceState(): Promise<Uint8Array> {
    this.requirePaused('export device state')
    return encodeDeviceState({
      pageCount: this.pageCount,
      clockOffsetMs: this.clockOffsetMs,
      framesIn: this.framesIn,
      framesOut: this.framesOut,
      executed: this.executed,
      pending: this.rx.slice(this.rxHead),
    })
  }

  async importDeviceState(bytes: Uint8Array): Promise<void> {
    this.requirePaused('import device state')
    const s = decodeDeviceState(bytes)
    if (s.pageCount !== this.pageCount) {
      throw new Error(`device state is for a ${s.pageCount}-page VM, this one has ${this.pageCount} pages`)
    }
    this.clockOffsetMs = s.clockOffsetMs
    this.framesIn = s.framesIn
    this.framesOut = s.framesOut
    this.executed = s.executed
    this.rx = [...s.pending]
    this.rxHead = 0
  }

  async injectFrame(frame: Uint8Array): Promise<void> {
    this.requireAlive('inject a frame')
    // WHY copy: the caller may reuse its buffer; the RX queue is device state.
    this.rx.push(Uint8Array.from(frame))
    this.framesIn++
    this.schedule()
  }

  async close(): Promise<void> {
    this.shutdown(new Error('VM closed'))
  }

  /** Simulates an unexpected death (like QEMU being SIGKILLed): emits 'exit'. */
  crash(reason = 'simulated crash'): void {
    if (this.state === 'exited') return
    this.shutdown(new Error(`VM exited: ${reason}`))
    this.emit('exit', { code: null, signal: 'SIGKILL', reason })
  }

  /** Busy time of the guest CPU loop in ms (the idle monitor's "process CPU clock"). */
  cpuTimeMs(): number {
    return this.cpuNs / 1e6
  }

  activity(): SimulatedVmActivity {
    return {
      framesIn: this.framesIn,
      framesOut: this.framesOut,
      executed: this.executed,
      pending: this.rx.length - this.rxHead,
      cpuTimeMs: this.cpuTimeMs(),
    }
  }

  /** Frames queued but not yet executed (the guest is quiet when this is 0). */
  get pendingFrames(): number {
    return this.rx.length - this.rxHead
  }

  /** Resolves once every frame injected so far has been executed (requires the VM to run). */
  drained(): Promise<void> {
    if (this.state === 'exited') return Promise.reject(new Error('VM exited'))
    if (this.pendingFrames === 0) return Promise.resolve()
    return new Promise((resolve, reject) => this.drainWaiters.push({ resolve, reject }))
  }

  /** Digest of the service's logical content (key/value pairs), independent of page layout. */
  logicalDigest(): string {
    const pairs = [...entries(this.mem)].map(([k, v]) => Buffer.concat([u32(k.length), k, u32(v.length), v]))
    pairs.sort(Buffer.compare)
    return hashPage(Buffer.concat(pairs)).toString('hex')
  }

  /** Number of key/value pairs stored. */
  entryCount(): number {
    let n = 0
    for (const _ of entries(this.mem)) n++
    return n
  }

  /** Deterministic service counters from the stats page. */
  stats(): {
    gets: number
    sets: number
    dels: number
    incrs: number
    hits: number
    misses: number
    errors: number
    dropped: number
  } {
    const m = this.mem
    return {
      gets: m.u32(STATS.gets),
      sets: m.u32(STATS.sets),
      dels: m.u32(STATS.dels),
      incrs: m.u32(STATS.incrs),
      hits: m.u32(STATS.hits),
      misses: m.u32(STATS.misses),
      errors: m.u32(STATS.errors),
      dropped: m.u32(STATS.dropped),
    }
  }

  private schedule(): void {
    if (this.turnScheduled || this.state !== 'running' || this.pendingFrames === 0) return
    this.turnScheduled = true
    setImmediate(() => {
      this.turnScheduled = false
      this.turn()
    })
  }

  /** One CPU time slice: executes up to framesPerTurn frames, stopping at once if paused. */
  private turn(): void {
    const t0 = process.hrtime.bigint()
    let n = 0
    while (n < this.framesPerTurn && this.state === 'running' && this.rxHead < this.rx.length) {
      const frame = this.rx[this.rxHead++]
      n++
      this.executed++
      const out = serveFrame(this.mem, decodeKvRequest(frame), this.env)
      if (out !== null) {
        this.framesOut++
        this.emit('frame-out', out) // a listener may pause us: the loop re-checks state
      }
    }
    if (this.rxHead > 1024 && this.rxHead * 2 > this.rx.length) {
      this.rx = this.rx.slice(this.rxHead)
      this.rxHead = 0
    }
    this.account(t0)
    if (this.pendingFrames > 0) this.schedule()
    else if (this.state === 'running') this.wakeDrainers()
  }

  private tick(): void {
    if (this.state !== 'running') return
    const t0 = process.hrtime.bigint()
    timerTick(this.mem, this.env)
    this.account(t0)
  }

  private account(t0: bigint): void {
    const ns = Number(process.hrtime.bigint() - t0)
    this.cpuNs += ns
    // The guest's own CPU accounting (like /proc/stat in a real guest): wall-clock, so it differs.
    if (!this.deterministic) this.mem.setF64(STATS.busyMs, this.mem.f64(STATS.busyMs) + ns / 1e6)
  }

  private wakeDrainers(): void {
    const waiters = this.drainWaiters
    this.drainWaiters = []
    for (const w of waiters) w.resolve()
  }

  private shutdown(reason: Error): void {
    if (this.state === 'exited') return
    this.state = 'exited'
    this.stopTimer()
    this.rx = []
    this.rxHead = 0
    const waiters = this.drainWaiters
    this.drainWaiters = []
    for (const w of waiters) w.reject(reason)
  }

  private stopTimer(): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
  }

  private requireAlive(what: string): void {
    if (this.state === 'exited') throw new Error(`cannot ${what}: VM has exited`)
  }

  private requirePaused(what: string): void {
    this.requireAlive(what)
    if (this.state !== 'paused')
      throw new Error(`cannot ${what} while the VM is ${this.state}; pause it first`)
  }

  private checkPages(indices: Uint32Array, buf: Uint8Array): void {
    if (buf.length < indices.length * PAGE_SIZE) {
      throw new RangeError(`buffer of ${buf.length} bytes is too small for ${indices.length} pages`)
    }
    for (let i = 0; i < indices.length; i++) {
      if (indices[i] >= this.pageCount) {
        throw new RangeError(`page index ${indices[i]} out of range (VM has ${this.pageCount} pages)`)
      }
    }
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}
