// Everything a VM replica runs besides consensus: the simulated VM, the page hasher, vmsync's
// VmReplica (input coordinator + output guard + sync protocol) and the idle monitor that decides
// when the primary syncs. Leadership of the consensus log decides the VM's role: leader =
// primary (promote keeps the VM's own state, as PLOVER's failover does), otherwise backup.
import { IdleMonitor } from '@plover/idle-monitor'
import {
  type OrderedLog,
  PageHasher,
  SimulatedVm,
  SimulatedVmCpuProbe,
  type SyncLink,
  type SyncReport,
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
  private syncing = false
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
    this.wire()
  }

  static async start(o: VmStackOptions): Promise<VmStack> {
    const s = new VmStack(o)
    await s.vm.resume()
    s.monitor.start()
    return s
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

  /**
   * The consensus log's leadership changed. `freshLog`: the log has never carried an input, so
   * even a never-synced VM is a correct execution of it (see PrimacyGate).
   */
  setLeader(isLeader: boolean, opts: { freshLog?: boolean } = {}): void {
    // A sync requested under the previous role will never report back to this one.
    if (isLeader !== this.isPrimary) this.syncDone()
    if (isLeader && this.replica.role !== 'primary') {
      // vmsync closes the sync epochs of every marker applied so far: a backup replaying old
      // markers gets an Abort for each at once.
      this.replica.promote({ trusted: opts.freshLog ?? false })
      this.o.logger.info('promoted to primary: continuing from this VM state', { trusted: this.trusted })
    } else if (!isLeader && this.replica.role === 'primary') {
      this.o.logger.warn('lost leadership: demoted to backup, held outputs dropped; continuing as a backup', {
        trusted: this.trusted,
      })
      this.replica.demote()
    }
  }

  attachLink(link: SyncLink): void {
    this.replica.attachLink(link)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
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
      if (rep.side === 'primary') this.syncDone()
    })
    r.on('sync-failed', (f) => {
      if (f.side === 'primary') {
        this.totals.failures++
        this.syncDone()
      }
      // A joining backup replays old markers; the primary aborts those at once: not a problem.
      const level = f.error.name === 'SyncAbortedError' ? 'debug' : 'warn'
      logger[level]('sync failed', { side: f.side, epoch: f.epoch, reason: f.reason })
    })
    r.on('sync-skipped', (epoch, reason) => {
      logger.debug('sync skipped', { epoch, reason })
      if (this.isPrimary) this.syncDone()
    })
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
    this.monitor.on('sync-due', (due) => this.onSyncDue(due.reason))
    this.monitor.on('calibrated', (b) => logger.info('idle baseline calibrated', { rateCores: b.rateCores }))
    this.vm.on('exit', (info) => logger.error('VM exited', { ...info }))
  }

  private onSyncDue(reason: string): void {
    const primary = this.replica.primary
    // Only a primary with a connected backup syncs; otherwise restart the policy's clock.
    const ready = primary?.hasBackup && this.o.backupCaughtUp()
    if (!ready || this.syncing || this.closed) {
      this.monitor.syncCompleted()
      return
    }
    this.syncing = true
    this.monitor.syncStarted()
    this.o.logger.debug('sync due', { reason })
    this.replica.requestSync().catch((err: Error) => {
      this.o.logger.debug('sync marker not committed', { error: err })
      this.syncDone()
    })
  }

  private syncDone(): void {
    if (!this.syncing) return
    this.syncing = false
    this.monitor.syncCompleted()
  }
}
