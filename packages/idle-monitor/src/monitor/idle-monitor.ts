import { EventEmitter } from 'eventemitter3'
import { type CalibrationConfig, Calibrator } from '../calibration/calibrator.js'
import type { IdleBaseline } from '../calibration/idle-baseline.js'
import type { Observation } from '../policy/observation.js'
import type { PolicyConfig } from '../policy/policy-config.js'
import { type Decision, SyncPolicy } from '../policy/sync-policy.js'
import type { SyncDue } from '../policy/sync-reason.js'
import type { BlockIoProbe, IoSample } from '../probes/block-io-probe.js'
import type { CpuProbe, CpuSample } from '../probes/cpu-probe.js'
import { type OutputProbe, type OutputSource, OutputSourceProbe } from '../probes/output-probe.js'
import type { ProcessGoneError } from '../probes/process-gone-error.js'

/**
 * Default sampling period, ms. WHY 10 ms and not PLOVER's 100 µs: a Node timer tick plus the
 * /proc reads cost tens of µs of CPU, so 100 µs would burn a core; 10 ms keeps the monitor well
 * under 1 % of a core (measured by bench/src/idle-sync/overhead.ts, see README) while idle
 * detection still reacts within idleSamples × 10 ms = 30 ms.
 */
export const DEFAULT_PERIOD_MS = 20

export interface IdleMonitorOptions {
  readonly cpu: CpuProbe
  readonly io?: BlockIoProbe
  /** An output probe, or directly the source it reads (e.g. vmsync's output guard). */
  readonly output?: OutputProbe | OutputSource
  /** Sampling period, ms. Default {@link DEFAULT_PERIOD_MS}. */
  readonly periodMs?: number
  readonly policy?: Partial<PolicyConfig>
  /** A known baseline; without one, `start()` first calibrates (the VM must be at rest then). */
  readonly baseline?: IdleBaseline
  readonly calibration?: Partial<CalibrationConfig>
  /** Monotonic clock in ms. Default performance.now. */
  readonly now?: () => number
}

export interface MonitorSampleEvent {
  readonly observation: Observation
  readonly decision: Decision
}

export interface IdleMonitorEvents {
  /** Time to sync, and why. Call syncStarted()/syncCompleted() around the sync. */
  'sync-due': (due: SyncDue) => void
  /** Every observation and the policy's verdict on it (for tracing and tests). */
  sample: (event: MonitorSampleEvent) => void
  calibrated: (baseline: IdleBaseline) => void
  /** The VM process exited; the monitor has stopped itself. */
  gone: (error: ProcessGoneError) => void
  /** A probe failed but the process may be alive; the interval is not counted as idle. */
  'probe-error': (error: Error) => void
}

export interface MonitorStats {
  readonly samples: number
  /** Timer ticks skipped because an asynchronous I/O probe was still answering. */
  readonly skippedTicks: number
  /** Mean wall time spent per sample in the monitor (probes + policy), µs. */
  readonly meanSampleUs: number
}

interface PendingCalibration {
  readonly calibrator: Calibrator
  readonly promise: Promise<IdleBaseline>
  resolve(b: IdleBaseline): void
  reject(e: Error): void
}

type CpuReading = Extract<CpuSample, { state: 'ok' }>

function isSource(o: OutputProbe | OutputSource): o is OutputSource {
  return typeof (o as OutputSource).heldBytes === 'function'
}

/** Samples the probes on a timer, feeds the pure {@link SyncPolicy}, and emits its decisions. */
export class IdleMonitor extends EventEmitter<IdleMonitorEvents> {
  readonly policy: SyncPolicy
  readonly periodMs: number
  private readonly cpu: CpuProbe
  private readonly io: BlockIoProbe | undefined
  private readonly output: OutputProbe | undefined
  private readonly now: () => number
  private readonly calibrationConfig: Partial<CalibrationConfig>
  private timer: NodeJS.Timeout | undefined
  private inFlight = false
  private calibration: PendingCalibration | undefined
  private samples = 0
  private skipped = 0
  private busyMs = 0

  constructor(opts: IdleMonitorOptions) {
    super()
    this.cpu = opts.cpu
    this.io = opts.io
    this.output = opts.output && (isSource(opts.output) ? new OutputSourceProbe(opts.output) : opts.output)
    this.periodMs = opts.periodMs ?? DEFAULT_PERIOD_MS
    if (!(this.periodMs > 0)) throw new RangeError(`periodMs must be > 0, got ${this.periodMs}`)
    this.now = opts.now ?? (() => performance.now())
    this.calibrationConfig = opts.calibration ?? {}
    this.policy = new SyncPolicy(opts.policy, opts.baseline)
  }

  get running(): boolean {
    return this.timer !== undefined
  }

  get baseline(): IdleBaseline | undefined {
    return this.policy.baseline
  }

  get stats(): MonitorStats {
    return {
      samples: this.samples,
      skippedTicks: this.skipped,
      meanSampleUs: this.samples ? (this.busyMs * 1000) / this.samples : 0,
    }
  }

  /** Starts sampling. Without a baseline, calibration runs first (see {@link recalibrate}). */
  start(): void {
    if (this.timer) return
    if (!this.policy.baseline) void this.recalibrate().catch(() => {})
    this.schedule()
    this.tick()
  }

  stop(): void {
    if (!this.timer) return
    clearTimeout(this.timer)
    this.timer = undefined
    this.calibration?.reject(new Error('idle monitor stopped during calibration'))
    this.calibration = undefined
  }

  /** Stops and closes the probes. */
  close(): void {
    this.stop()
    this.cpu.close()
    this.io?.close?.()
  }

  /**
   * Learns a new idle baseline from the next `windowMs` of samples. The caller guarantees the
   * VM has no work during the window (e.g. right after boot, or with client traffic paused).
   * Max-interval and output-pressure keep working meanwhile; idle keeps using the old baseline.
   */
  recalibrate(config: Partial<CalibrationConfig> = {}): Promise<IdleBaseline> {
    if (this.calibration) return this.calibration.promise
    let resolve!: (b: IdleBaseline) => void
    let reject!: (e: Error) => void
    const promise = new Promise<IdleBaseline>((res, rej) => {
      resolve = res
      reject = rej
    })
    this.calibration = {
      calibrator: new Calibrator({ ...this.calibrationConfig, ...config }),
      promise,
      resolve,
      reject,
    }
    return promise
  }

  /** The VM is about to pause for a sync. */
  syncStarted(): void {
    this.policy.syncStarted(this.now())
  }

  /**
   * The sync finished and the VM runs again: the interval clock restarts now. Samples at once,
   * so that work the guest does right after resuming (clients answering released outputs)
   * falls into the first interval instead of before it.
   */
  syncCompleted(): void {
    this.policy.syncCompleted(this.now())
    this.calibration?.calibrator.reseed()
    if (!this.timer) return
    clearTimeout(this.timer)
    this.schedule()
    this.tick()
  }

  /**
   * WHY a timeout chain and not setInterval: after a late tick, setInterval fires again at once,
   * and an interval of 0.1 ms says nothing — the kernel updates a running thread's runtime only
   * at scheduler ticks (1–4 ms). Every interval is thus at least one period long.
   */
  private schedule(): void {
    this.timer = setTimeout(() => {
      this.schedule()
      this.tick()
    }, this.periodMs)
  }

  private tick(): void {
    if (this.inFlight) {
      this.skipped++
      return
    }
    const t0 = performance.now()
    const cpu = this.cpu.sample()
    const atMs = this.now()
    if (cpu.state !== 'ok') {
      if (cpu.state === 'gone') {
        this.onGone(cpu.error)
        return
      }
      this.emit('probe-error', cpu.error)
      return
    }
    const ioResult = this.io?.sample()
    if (ioResult instanceof Promise) {
      this.inFlight = true
      this.busyMs += performance.now() - t0
      ioResult.then(
        (io) => {
          this.inFlight = false
          const t1 = performance.now()
          this.finish(atMs, cpu, io)
          this.busyMs += performance.now() - t1
        },
        (err: unknown) => {
          // Probes report failures as values; this guards against a misbehaving custom probe.
          this.inFlight = false
          this.emit('probe-error', err instanceof Error ? err : new Error(String(err)))
        },
      )
      return
    }
    this.finish(atMs, cpu, ioResult)
    this.busyMs += performance.now() - t0
  }

  private finish(atMs: number, cpu: CpuReading, io: IoSample | undefined): void {
    if (!this.timer) return // stopped while an async probe was answering
    if (io && io.state === 'gone') {
      this.onGone(io.error)
      return
    }
    if (io && io.state === 'error') this.emit('probe-error', io.error)
    const out = this.output?.sample()
    if (out && out.state === 'error') this.emit('probe-error', out.error)
    const observation: Observation = {
      atMs,
      cpuNs: cpu.cpuNs,
      waitNs: cpu.waitNs,
      runnable: cpu.runnable,
      io: io === undefined ? undefined : io.state === 'ok' ? io : null,
      output: out === undefined ? undefined : out.state === 'ok' ? out : null,
    }
    this.samples++
    // A VM paused for a sync is not "at rest": those samples would lower the baseline.
    if (this.calibration && this.policy.phase !== 'syncing') {
      const b = this.calibration.calibrator.add(observation)
      if (b) {
        const c = this.calibration
        this.calibration = undefined
        this.policy.setBaseline(b)
        c.resolve(b)
        this.emit('calibrated', b)
      }
    }
    const decision = this.policy.observe(observation)
    this.emit('sample', { observation, decision })
    if (decision.syncDue) this.emit('sync-due', decision.syncDue)
  }

  private onGone(error: ProcessGoneError): void {
    const c = this.calibration
    this.calibration = undefined
    this.stop()
    c?.reject(error)
    this.emit('gone', error)
  }
}
