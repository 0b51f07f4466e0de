// Starts the primary's syncs when a trigger says it is time (the idle monitor's sync-due), and
// tells the trigger when each one is over, so its min/max-interval clock runs from the right
// moment.
//
// Exactly one sync is requested at a time. A due sync is skipped — and the trigger's clock
// restarted, so it does not fire again at once — when this VM is not primary, when no backup is
// attached, or when `ready` says no (e.g. vmBackupCaughtUp: the backup is still replaying the
// log). A request under one role never reports back under the other: a role change ends it.
import { EventEmitter } from 'eventemitter3'
import type { VmReplica } from '../protocol/vm-replica.js'

/** What decides when to sync. @plover/idle-monitor's IdleMonitor is one. */
export interface SyncTrigger {
  on(event: 'sync-due', fn: (due: { readonly reason: string }) => void): unknown
  off(event: 'sync-due', fn: (due: { readonly reason: string }) => void): unknown
  /** A sync began (the trigger stops counting idle time towards the next one). */
  syncStarted(): void
  /** A sync is over, or a due one was skipped: the interval clock restarts now. */
  syncCompleted(): void
}

export type SchedulerReplica = Pick<VmReplica, 'on' | 'off' | 'role' | 'primary' | 'requestSync'>

export interface SyncSchedulerOptions {
  readonly replica: SchedulerReplica
  /** Optional: the scheduler still accepts syncNow() without one (fixed-interval benches). */
  readonly trigger?: SyncTrigger
  /** Extra condition for starting a sync (default: always). */
  readonly ready?: () => boolean
}

export interface SyncSchedulerEvents {
  /** A sync marker was proposed, and why. */
  requested: (reason: string) => void
  /** A due sync was not started: not primary, no backup attached, or not ready. */
  skipped: (reason: string, why: string) => void
  /** The marker was not committed (lost leadership, log closed): the sync never started. */
  'request-failed': (error: Error) => void
}

export class SyncScheduler extends EventEmitter<SyncSchedulerEvents> {
  private syncing = false
  private closed = false
  private readonly onDue = (due: { readonly reason: string }) => this.syncNow(due.reason)
  private readonly onCompleted = (r: { readonly side: string }) => r.side === 'primary' && this.over()
  private readonly onOver = () => this.over()

  constructor(private readonly o: SyncSchedulerOptions) {
    super()
    o.trigger?.on('sync-due', this.onDue)
    o.replica.on('sync-completed', this.onCompleted)
    o.replica.on('sync-failed', this.onCompleted)
    o.replica.on('sync-skipped', this.onOver)
    o.replica.on('role', this.onOver)
  }

  /** A sync has been requested and has not reported back yet. */
  get inProgress(): boolean {
    return this.syncing
  }

  /** Start a sync now if one may start (what the trigger's sync-due does). */
  syncNow(reason = 'requested'): void {
    const why = this.closed
      ? 'closed'
      : this.syncing
        ? 'a sync is in progress'
        : this.o.replica.role !== 'primary'
          ? 'not primary'
          : !this.o.replica.primary?.hasBackup
            ? 'no backup attached'
            : !(this.o.ready?.() ?? true)
              ? 'backup not ready'
              : undefined
    if (why) {
      // A sync in progress reports to the trigger itself; anything else restarts its clock.
      if (!this.syncing) this.o.trigger?.syncCompleted()
      this.emit('skipped', reason, why)
      return
    }
    this.syncing = true
    this.o.trigger?.syncStarted()
    this.emit('requested', reason)
    this.o.replica.requestSync().catch((err: Error) => {
      this.emit('request-failed', err)
      this.over()
    })
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.o.trigger?.off('sync-due', this.onDue)
    this.o.replica.off('sync-completed', this.onCompleted)
    this.o.replica.off('sync-failed', this.onCompleted)
    this.o.replica.off('sync-skipped', this.onOver)
    this.o.replica.off('role', this.onOver)
  }

  private over(): void {
    if (!this.syncing) return
    this.syncing = false
    this.o.trigger?.syncCompleted()
  }
}
