// One replica's vmsync runtime: wires an OrderedLog, a ReplicatedVm, the input coordinator
// (batcher + in-order delivery), the output guard and the primary- or backup-side sync protocol.
// The sync link (authenticated, point-to-point) is attached by the caller when the peer
// connects. Promotion (backup -> primary on failover) keeps the VM's own state, as PLOVER does.
// Demotion (a primary lost leadership, e.g. a spurious election) keeps it too: a primary's VM only
// ever receives committed inputs (through the same in-order delivery as a backup's, on 'apply'),
// and the primary side of a sync only reads its VM, never writes it. So a deposed primary's VM is
// still a correct execution of a prefix of the committed log; it carries on as a backup,
// delivering the rest of the log, and its next sync is incremental. Only a VM that was untrusted
// when it was promoted (possible when the caller promotes a never-synced backup) stays untrusted.
import { EventEmitter } from 'eventemitter3'
import { InputBatcher, type InputBatcherOptions } from '../input/input-batcher.js'
import { InputDelivery } from '../input/input-delivery.js'
import type { SyncLink } from '../link/link.js'
import { InputHistory } from '../log/input-history.js'
import type { OrderedLog } from '../log/ordered-log.js'
import type { SyncFailure, SyncReport } from '../metrics/sync-report.js'
import { OutputGuard } from '../output/output-guard.js'
import { type BackupAckPoint, BackupSync } from './backup-sync.js'
import type { DuplicateMessageError, StaleEpochError } from './errors.js'
import type { SyncMarker } from './marker.js'
import type { PrecopyOptions, PrecopyRound } from './precopy-sender.js'
import {
  type FullSyncMethod,
  type PrimaryPausePoint,
  PrimarySync,
  type TransferMode,
} from './primary-sync.js'
import type { SyncSideOptions } from './sync-options.js'

export type ReplicaRole = 'primary' | 'backup'

export interface VmReplicaOptions extends SyncSideOptions {
  readonly log: OrderedLog
  readonly role: ReplicaRole
  /** Primary transfer mode; default 'vsmr'. */
  readonly mode?: TransferMode
  /** Primary only: how a backup that needs one gets its full sync (PrimarySyncOptions.fullSync). */
  readonly fullSync?: FullSyncMethod
  /** Primary only: largest paused copy of the union (PrimarySyncOptions.maxCopyBytes). */
  readonly maxCopyBytes?: number
  /** Primary only: when to pause relative to the backup's dirty set (PrimarySyncOptions.pauseAt). */
  readonly pauseAt?: PrimaryPausePoint
  /** Backup only: acknowledge a transfer once staged (default) or once applied (BackupSyncOptions.ackAfter). */
  readonly ackAfter?: BackupAckPoint
  /**
   * Pre-copy before a new backup's full sync (default on with compared full syncs; false: off).
   * The primary runs the rounds with these options; an untrusted backup offers them.
   */
  readonly precopy?: PrecopyOptions | false
  /** Backup only: VM state untrusted at start (default true -> first sync is full). */
  readonly needFull?: boolean
  readonly batcher?: InputBatcherOptions
  /** Primary: most output bytes held for syncs at once; beyond it frames are dropped (OutputGuard). */
  readonly maxHeldOutputBytes?: number
  /**
   * Follow the log's 'leadership' events (default true): losing leadership demotes at once, so a
   * replica that may no longer lead stops releasing outputs; gaining it promotes — a trusted VM,
   * or one whose log never carried an input. An untrusted VM in a log that did is not promoted
   * ('primacy-refused'): it would answer from an empty or stale state. With a consensus log use
   * `false` and a PrimacyGate, which also waits for the leader's no-op and hands leadership over.
   */
  readonly followLeadership?: boolean
}

export interface VmReplicaEvents {
  'sync-completed': (report: SyncReport) => void
  'sync-failed': (failure: SyncFailure) => void
  'sync-skipped': (epoch: number, reason: string) => void
  rejected: (error: StaleEpochError | DuplicateMessageError) => void
  'link-down': (error?: Error) => void
  /** A primary output frame that may reach clients now. */
  release: (frame: Uint8Array) => void
  unprotected: (reason: string) => void
  protected: () => void
  /** Held outputs reached maxHeldOutputBytes: frames are being dropped (once per period). */
  'output-overflow': (heldBytes: number) => void
  /** Input delivery stopped: the VM refused a frame. */
  fault: (error: Error) => void
  /**
   * The log was compacted past records `from`..`through` before this VM applied them: the VM is
   * untrusted from now on (a backup asks for a full sync at its next marker).
   */
  'missed-inputs': (from: number, through: number) => void
  /** Primary: a pre-copy round to a new backup finished (its full sync follows once converged). */
  'precopy-round': (round: PrecopyRound) => void
  /** promote() or demote() changed the role (after the new side is in place). */
  role: (role: ReplicaRole) => void
  /** followLeadership: the log leads, but this VM is untrusted and the log carried inputs. */
  'primacy-refused': (reason: string) => void
}

export class VmReplica extends EventEmitter<VmReplicaEvents> {
  readonly delivery: InputDelivery
  readonly guard: OutputGuard
  readonly batcher: InputBatcher
  private primarySide: PrimarySync | undefined
  private backupSide: BackupSync | undefined
  private roleValue: ReplicaRole
  /** Primary only: its VM is a correct execution of the committed log (see trusted). */
  private primaryTrusted = true
  /** Input delivery stopped (the VM refused a frame): the VM missed inputs for good. */
  private faulted = false
  private lastEpoch = 0
  private link: SyncLink | undefined
  private readonly detach: () => void
  private readonly onFrame = (f: Uint8Array) => this.guard.push(f)

  constructor(private readonly o: VmReplicaOptions) {
    super()
    this.roleValue = o.role
    this.guard = new OutputGuard({
      role: o.role,
      ...(o.maxHeldOutputBytes !== undefined ? { maxHeldBytes: o.maxHeldOutputBytes } : {}),
    })
    this.guard.on('release', (f) => this.emit('release', f))
    this.guard.on('overflow', (held) => this.emit('output-overflow', held))
    this.guard.on('unprotected', (r) => this.emit('unprotected', r))
    this.guard.on('protected', () => this.emit('protected'))
    this.batcher = new InputBatcher(o.log, o.batcher)
    this.delivery = new InputDelivery(o.vm, {
      hooks: {
        onMarker: (_index, marker) => this.onMarker(marker),
        onSyncDone: (_index, done) => {
          if (done.epoch > this.lastEpoch) this.lastEpoch = done.epoch
          this.primarySide?.onSyncDone(done)
        },
      },
    })
    this.delivery.on('missed', (from, through) => {
      if (this.primarySide) this.primaryTrusted = false
      this.backupSide?.distrust()
      this.emit('missed-inputs', from, through)
    })
    this.delivery.on('fault', (e) => {
      this.faulted = true
      this.emit('fault', e)
    })
    const detachDelivery = this.delivery.attach(o.log)
    const follow = o.followLeadership ?? true
    // Created with the log, like the delivery: it must see every applied record.
    const history = follow ? new InputHistory(o.log) : undefined
    const onLeadership = (leader: boolean) => {
      if (!leader) return this.demote()
      const verdict = history!.primacyFor(this.trusted)
      if (verdict === 'refuse')
        this.emit('primacy-refused', 'untrusted VM in a log that carried inputs: needs a full sync first')
      else this.promote({ trusted: verdict === 'fresh-log' })
    }
    if (follow) o.log.on('leadership', onLeadership)
    this.detach = () => {
      detachDelivery()
      history?.detach()
      o.log.off('leadership', onLeadership)
    }
    o.vm.on('frame-out', this.onFrame)
    if (o.role === 'primary') this.becomePrimary()
    else this.becomeBackup(o.needFull ?? true)
  }

  get role(): ReplicaRole {
    return this.roleValue
  }

  /**
   * The VM's state is a correct execution of a prefix of the committed log: a backup after its
   * (full) sync, a primary promoted from such a backup (or created as primary), and a deposed
   * primary that was trusted. An untrusted VM must not act as primary once the log has carried
   * inputs (it would answer from an empty or stale state); it needs a full sync first.
   */
  get trusted(): boolean {
    if (this.faulted) return false
    if (this.roleValue === 'primary') return this.primaryTrusted
    return !(this.backupSide?.needFull ?? true)
  }

  get primary(): PrimarySync | undefined {
    return this.primarySide
  }

  get backup(): BackupSync | undefined {
    return this.backupSide
  }

  /** Primary: an inbound client frame for the VM (goes through the log first). */
  pushInput(frame: Uint8Array): void {
    if (this.roleValue !== 'primary') throw new Error('only the primary accepts client input')
    this.batcher.push(frame)
  }

  /** Primary: propose a sync marker now (the idle monitor's sync-due). Resolves with its epoch. */
  requestSync(): Promise<number> {
    if (!this.primarySide) return Promise.reject(new Error('only the primary starts syncs'))
    this.batcher.flush()
    return this.primarySide.requestSync()
  }

  /** The peer's authenticated sync link (replaces any previous one). */
  attachLink(link: SyncLink): void {
    this.link = link
    this.primarySide?.attachLink(link)
    this.backupSide?.attachLink(link)
  }

  /**
   * Failover: this backup's log became leader. Keeps the VM's own state (no rollback).
   * The primary is trusted if the backup was, or if the caller vouches for the VM with
   * `trusted: true` — e.g. a fresh VM whose log has never carried an input (a brand-new
   * cluster): it executes every input from the first one on, so it is a correct execution.
   * Decide that with an InputHistory: a log compacted before this process saw it counts as
   * having carried inputs, whatever entries remain.
   */
  promote(opts: { readonly trusted?: boolean } = {}): void {
    if (this.roleValue === 'primary') return
    this.primaryTrusted = (opts.trusted ?? false) || this.trusted
    const baseline = this.backupSide?.baselineId ?? 0
    this.roleValue = 'primary'
    this.backupSide?.detachLink()
    this.backupSide?.removeAllListeners()
    this.backupSide = undefined
    this.guard.setRole('primary')
    this.becomePrimary(baseline)
    this.emit('role', 'primary')
  }

  /**
   * Lost leadership: stop releasing, drop held outputs (never released), continue as a backup.
   * The VM stays trusted if it was (see the header): it executed only committed inputs, so the
   * new primary's next sync makes it identical incrementally, and it may be promoted again
   * without a full sync (e.g. if the new primary dies before syncing it).
   */
  demote(): void {
    if (this.roleValue === 'backup') return
    this.roleValue = 'backup'
    this.batcher.clear()
    // WHY the guard first: held outputs of an unsynced epoch are dropped before anything else can
    // act on them; dispose() then makes a pending Unprotect of this side a no-op.
    this.guard.setRole('backup')
    const baseline = this.primarySide?.baselineId ?? 0
    this.primarySide?.dispose()
    this.primarySide?.removeAllListeners()
    this.primarySide = undefined
    this.becomeBackup(!this.primaryTrusted, baseline)
    this.emit('role', 'backup')
  }

  async close(): Promise<void> {
    this.primarySide?.dispose()
    this.batcher.clear()
    this.detach()
    this.delivery.stop()
    this.o.vm.off('frame-out', this.onFrame)
    this.link?.close()
  }

  /** `baseline`: id of the transfer the VM's dirty tracker dates from (see DirtyMsg.baseline). */
  private becomePrimary(baseline = 0): void {
    const p = new PrimarySync({ ...this.o, guard: this.guard, baselineId: baseline })
    p.on('precopy-round', (r) => this.emit('precopy-round', r))
    // WHY a marker now: the backup waits, paused and unprotecting us, for its full sync.
    p.on('precopy-ready', () => {
      if (this.primarySide === p) this.requestSync().catch(() => {})
    })
    // Syncs of every marker applied so far belonged to earlier primaries (or ran here before a
    // demotion): close them, so a backup replaying old markers is answered with Abort at once.
    p.closeEpochsThrough(this.lastEpoch)
    this.forward(p)
    this.primarySide = p
    this.delivery.setSkipInputs(false)
    this.guard.unprotect('no synced backup yet')
  }

  private becomeBackup(needFull: boolean, baseline = 0): void {
    const b = new BackupSync({ ...this.o, needFull, baselineId: baseline })
    this.forward(b)
    b.on('trust', (trusted) => this.delivery.setSkipInputs(!trusted))
    this.delivery.setSkipInputs(b.needFull)
    this.backupSide = b
  }

  private forward(side: PrimarySync | BackupSync): void {
    const s = side as EventEmitter<VmReplicaEvents>
    s.on('sync-completed', (r) => this.emit('sync-completed', r))
    s.on('sync-failed', (f) => this.emit('sync-failed', f))
    s.on('sync-skipped', (e, r) => this.emit('sync-skipped', e, r))
    s.on('rejected', (e) => this.emit('rejected', e))
    s.on('link-down', (e) => this.emit('link-down', e))
  }

  private async onMarker(marker: SyncMarker): Promise<void> {
    if (marker.epoch > this.lastEpoch) this.lastEpoch = marker.epoch
    const primary = this.primarySide
    if (primary) {
      // WHY not wait for the whole sync: the primary resumes before its transfer, and the next
      // epoch's inputs may reach its VM from then on (PrimarySync runs one sync at a time).
      await new Promise<void>((resumed) => {
        primary.runSync(marker, { resumed }).finally(resumed)
      })
    } else if (this.backupSide) await this.backupSide.runSync(marker)
  }
}
