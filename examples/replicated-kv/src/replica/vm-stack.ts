// Everything a VM replica runs besides consensus: the simulated VM, the page hasher, vmsync's
// VmReplica (input coordinator + output guard + sync protocol), the idle monitor that decides
// when the primary syncs and vmsync's SyncScheduler between the two. Leadership of the consensus
// log decides the VM's role through vmsync's PrimacyGate (replica-node.ts): leader = primary
// (promote keeps the VM's own state, as PLOVER's failover does), otherwise backup.
import { IdleMonitor } from '@plover/idle-monitor'
import {
  type OrderedLog,
  PageHasher,
  SimulatedVm,
  SimulatedVmCpuProbe,
  type SyncLink,
  type SyncReport,
  SyncScheduler,
  VmReplica,
  VmsyncMetrics,
} from '@plover/vmsync'
import type { SyncTuning } from '../config/replica-config.js'
import type { Logger } from '../runtime/logger.js'
import { SyncTotals } from './sync-totals.js'

export interface VmStackOptions {
  readonly log: OrderedLog
  readonly logger: Logger
  readonly pages: number
  readonly tuning: SyncTuning
  readonly replicaId: number
  /**
   * True when a VM backup's consensus log is close to ours. WHY: a marker makes the primary's
   * input delivery wait for the backup's Dirty message, and a backup that is still replaying
   * the log (a spare that just joined) would stall the primary for the whole replay.
   */
  readonly backupCaughtUp: () => boolean
}

export class VmStack {
  readonly vm: SimulatedVm
  readonly replica: VmReplica
  readonly metrics: VmsyncMetrics
  readonly totals: SyncTotals
  private readonly hasher: PageHasher
  private readonly monitor: IdleMonitor
  private readonly scheduler: SyncScheduler
  private closed = false

  private constructor(private readonly o: VmStackOptions) {
    this.vm = new SimulatedVm({ pageCount: o.pages })
    // One hashing thread: three replica processes share two cores on the demo machine.
    this.hasher = new PageHasher({ threads: 1 })
    this.replica = new VmReplica({
      log: o.log,
      vm: this.vm,
      tracker: this.vm.dirtyTracker,
      hasher: this.hasher,
      // A fresh process's VM is untrusted: it is a backup until it leads, and asks for a full sync.
      role: 'backup',
      needFull: true,
      quiesce: () => this.vm.drained(),
      quietMaxMs: 50,
      peerTimeoutMs: 3000,
      // The consensus leadership events are handled by the node (one place decides the role).
      followLeadership: false,
    })
    this.metrics = new VmsyncMetrics({ labels: { replica: String(o.replicaId) } })
    this.metrics.watch(this.replica)
    this.totals = new SyncTotals(this.vm.pageSize)
    const guard = this.replica.guard
    this.monitor = new IdleMonitor({
      cpu: new SimulatedVmCpuProbe(this.vm),
      output: {
        heldBytes: () => guard.stats().heldBytes,
        oldestHeldAgeMs: () => guard.stats().oldestHeldAgeMs,
        framesOut: () => guard.stats().emittedFrames,
      },
      periodMs: o.tuning.periodMs,
      policy: {
        maxIntervalMs: o.tuning.maxIntervalMs,
        minIntervalMs: o.tuning.minIntervalMs,
        maxHeldAgeMs: o.tuning.maxHeldAgeMs,
      },
      calibration: { windowMs: 500, minIntervals: 10 },
    })
    // Only a primary with a connected, caught-up backup syncs; otherwise the policy's clock restarts.
    this.scheduler = new SyncScheduler({
      replica: this.replica,
      trigger: this.monitor,
      ready: o.backupCaughtUp,
    })
    this.wire()
  }

  /**
   * Creates the stack in the caller's turn (so its VmReplica sees every record the log applies
   * from the next turn on); start() then runs the VM and the idle monitor.
   */
  static create(o: VmStackOptions): VmStack {
    return new VmStack(o)
  }

  async start(): Promise<void> {
    await this.vm.resume()
    this.monitor.start()
  }

  get isPrimary(): boolean {
    return this.replica.role === 'primary'
  }

  /**
   * The VM's state is a correct execution of the committed log: a synced backup, a primary
   * promoted from one, or a deposed primary (vmsync keeps it trusted after demotion).
   */
  get trusted(): boolean {
    return this.replica.trusted
  }

  attachLink(link: SyncLink): void {
    this.replica.attachLink(link)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.scheduler.close()
    this.monitor.close()
    await this.replica.close()
    await this.hasher.close()
    await this.vm.close()
  }

  private wire(): void {
    const { logger } = this.o
    const r = this.replica
    r.on('sync-completed', (rep: SyncReport) => {
      this.totals.observe(rep)
      logger.debug('sync completed', { ...rep })
    })
    r.on('sync-failed', (f) => {
      if (f.side === 'primary') this.totals.failures++
      // A joining backup replays old markers; the primary aborts those at once: not a problem.
      const level = f.error.name === 'SyncAbortedError' ? 'debug' : 'warn'
      logger[level]('sync failed', { side: f.side, epoch: f.epoch, reason: f.reason })
    })
    r.on('sync-skipped', (epoch, reason) => logger.debug('sync skipped', { epoch, reason }))
    r.on('unprotected', (reason) => logger.warn('outputs unprotected (no synced backup)', { reason }))
    r.on('protected', () => logger.info('outputs protected: a synced backup exists'))
    r.on('link-down', (e) => logger.info('sync link down', { reason: e?.message ?? 'closed' }))
    r.on('missed-inputs', (from, through) =>
      logger.warn('log compacted past inputs this VM had not applied: waiting for a full sync', {
        from,
        through,
      }),
    )
    r.on('fault', (e) => logger.error('input delivery fault: VM refused a frame', { error: e }))
    this.scheduler.on('requested', (reason) => logger.debug('sync due', { reason }))
    this.scheduler.on('request-failed', (err) => logger.debug('sync marker not committed', { error: err }))
    this.monitor.on('calibrated', (b) => logger.info('idle baseline calibrated', { rateCores: b.rateCores }))
    this.vm.on('exit', (info) => logger.error('VM exited', { ...info }))
  }
}
