// Backup side of the sync protocol:
//   runSync (marker committed, every earlier input delivered):
//     wait quiet (bounded) -> pause -> collect own dirty set
//     -> Dirty(set | needFull)   <- Union(mode, pages)
//     hash union -> Hashes       (Vsmr, and FullCompared over every page)
//     <- Pages* (staged, nothing written)  <- TransferEnd
//     verify count + batch sequence + checksum -> write pages + device state -> reset baseline
//     -> Ack -> resume
// Atomicity: the VM is written only after the whole transfer is staged and verified, so a
// primary that dies before TransferEnd leaves the backup exactly in its pre-sync state, and one
// that dies after it leaves the complete new state. The only other outcome — the VM refusing the
// write — marks the backup untrusted (needFull) rather than pretending it is consistent. A backup
// that is untrusted already (waiting for a full sync) has nothing to protect: it writes pages as
// they arrive and becomes trusted only once the transfer is verified and applied.
// Pre-copy: an untrusted backup with a link (and no sync running) pauses its VM, hashes every
// page and sends PrecopyOffer; the primary's PrecopyPages are written through as they arrive. Its
// markers meanwhile get Union(Deferred) and the VM stays paused; the full sync that follows
// compares every page as usual, and only its success resumes the VM (as does a dropped link).
import { EventEmitter } from 'eventemitter3'
import type { SyncLink } from '../link/link.js'
import { StepTimer } from '../metrics/step-timer.js'
import { mbps, type SyncFailure, type SyncReport } from '../metrics/sync-report.js'
import { SyncChannel } from './channel.js'
import { applyDeviceStateDelta } from './device-state-delta.js'
import {
  type DuplicateMessageError,
  ProtocolViolationError,
  type StaleEpochError,
  SyncAbortedError,
} from './errors.js'
import type { SyncMarker } from './marker.js'
import {
  isFullSync,
  isHashedSync,
  type PrecopyOfferMsg,
  type PrecopyPagesMsg,
  SyncMessageType,
  SyncMode,
  type TransferEndMsg,
  type UnionMsg,
} from './messages.js'
import { digestsOf } from './page-digests.js'
import { allPages, assertInRange } from './page-set.js'
import type { PrecopyOptions } from './precopy-sender.js'
import { PageStaging } from './staging.js'
import { DEFAULT_PEER_TIMEOUT_MS, quiesceVm, type SyncSideOptions } from './sync-options.js'

export interface BackupSyncOptions extends SyncSideOptions {
  /**
   * The VM's state is untrusted (a new or restarted backup): ask for a full sync. Default true.
   * Pass false only when the VM is known equal to the primary at the last completed sync.
   */
  readonly needFull?: boolean
  /**
   * Id of the transfer the VM's dirty baseline dates from (default 0: since the start). VmReplica
   * passes it on when a replica changes role; see DirtyMsg.baseline.
   */
  readonly baselineId?: number
  /**
   * When to acknowledge a transfer:
   * - 'staged' (default): once it is complete and its checksum verified, before applying it — as
   *   Remus acks a buffered checkpoint. The primary releases outputs one apply sooner. If the
   *   apply then fails, the link drops (the primary unprotects) and the next sync is a full one;
   *   a failover meanwhile waits for the apply, since the log's delivery awaits this sync.
   * - 'applied': once the pages and device state are in the VM. An apply failure then fails
   *   the sync on the primary too (it unprotects: the outputs go out either way).
   */
  readonly ackAfter?: BackupAckPoint
  /**
   * While untrusted, offer the primary a pre-copy (default on; false: never): pause the VM (it
   * executes no inputs anyway), send the hashes of all its pages and take pages while the
   * primary runs, so the full sync pauses the primary only briefly. The round options themselves
   * are the primary's.
   */
  readonly precopy?: PrecopyOptions | false
}

export type BackupAckPoint = 'staged' | 'applied'

export interface BackupSyncEvents {
  'sync-completed': (report: SyncReport) => void
  'sync-failed': (failure: SyncFailure) => void
  'sync-skipped': (epoch: number, reason: string) => void
  /** needFull changed (the input delivery skips inputs while it is true). */
  trust: (trusted: boolean) => void
  rejected: (error: StaleEpochError | DuplicateMessageError) => void
  'link-down': (error?: Error) => void
  /** Pre-copy pages were written into the VM (running total since the offer). */
  'precopy-pages': (pages: number) => void
}

/** A pre-copy offered on `channel`: its VM is paused until the full sync (or the link) ends. */
interface PrecopyState {
  readonly channel: SyncChannel
  /** Settles when the offer was sent (or failed). */
  readonly offered: Promise<void>
  /** Pages written so far, in arrival order; each write waits for the one before. */
  writes: Promise<void>
  pages: number
  /** The VM ran before the offer paused it (a lost link resumes it then). */
  readonly wasRunning: boolean
}

export class BackupSync extends EventEmitter<BackupSyncEvents> {
  private channel: SyncChannel | undefined
  private needFullFlag: boolean
  private baseline: number
  /** The device state of the last transfer applied (a delta's base), with that transfer's id. */
  private device: { id: number; state: Uint8Array } | undefined
  private floor = 0
  private readonly peerMs: number
  private readonly ackAfter: BackupAckPoint
  private readonly staging: PageStaging
  private precopy: PrecopyState | undefined
  /** A runSync is in progress (pre-copy starts only between syncs). */
  private syncing = false

  constructor(private readonly o: BackupSyncOptions) {
    super()
    this.needFullFlag = o.needFull ?? true
    this.baseline = o.baselineId ?? 0
    this.peerMs = o.peerTimeoutMs ?? DEFAULT_PEER_TIMEOUT_MS
    this.ackAfter = o.ackAfter ?? 'staged'
    this.staging = new PageStaging(o.vm.pageSize, o.vm.pageCount)
  }

  /** True while the VM's state is untrusted and only a full sync can fix it. */
  get needFull(): boolean {
    return this.needFullFlag
  }

  /** Id of the last transfer applied (the dirty tracker's baseline); 0 = since the start. */
  get baselineId(): number {
    return this.baseline
  }

  get hasPrimary(): boolean {
    return this.channel?.isOpen ?? false
  }

  attachLink(link: SyncLink): void {
    this.channel?.close()
    const ch = new SyncChannel(link, {
      accepts: [
        SyncMessageType.Union,
        SyncMessageType.Pages,
        SyncMessageType.TransferEnd,
        SyncMessageType.Abort,
        SyncMessageType.PrecopyPages,
      ],
    })
    ch.setFloor(this.floor)
    ch.on('rejected', (err) => this.emit('rejected', err))
    ch.on('precopy', (m) => this.onPrecopyPages(ch, m))
    ch.on('close', (err) => {
      if (this.precopy?.channel === ch) this.endPrecopy()
      if (this.channel !== ch) return
      this.channel = undefined
      this.emit('link-down', err)
    })
    this.channel = ch
    this.maybeOfferPrecopy()
  }

  detachLink(error?: Error): void {
    this.channel?.close(error)
  }

  async runSync(marker: SyncMarker): Promise<SyncReport | undefined> {
    this.syncing = true
    try {
      return await this.runOne(marker)
    } finally {
      this.syncing = false
      this.maybeOfferPrecopy()
    }
  }

  private async runOne(marker: SyncMarker): Promise<SyncReport | undefined> {
    const epoch = marker.epoch
    if (epoch < this.floor) {
      this.emit('sync-skipped', epoch, `marker epoch ${epoch} already superseded`)
      return undefined
    }
    this.floor = epoch + 1
    const ch = this.channel
    if (!ch?.isOpen) {
      this.emit('sync-skipped', epoch, 'no primary link')
      return undefined
    }
    ch.setFloor(epoch)
    const { vm, tracker } = this.o
    const t0 = performance.now()
    const sent0 = ch.bytesSent
    const recv0 = ch.bytesReceived
    let paused = false
    let pauseStart = 0
    let applying = false
    const steps = new StepTimer()
    // The pre-copy offer goes out before this sync's Dirty (the link is ordered).
    const pre = this.precopy?.channel === ch ? this.precopy : undefined
    try {
      if (pre) await pre.offered
      else await quiesceVm(this.o, 5, 50)
      steps.lap('quiesce')
      await vm.pause()
      paused = true
      pauseStart = performance.now()
      steps.lap('pause')
      const needFull = this.needFullFlag
      const own = needFull ? new Uint32Array(0) : await tracker.collect()
      steps.lap('collect')
      await ch.send({
        type: SyncMessageType.Dirty,
        epoch,
        needFull,
        baseline: this.baseline,
        deviceBase: this.device?.id ?? 0,
        pages: own,
      })

      const union = (await ch.take(epoch, [SyncMessageType.Union], this.peerMs)) as UnionMsg
      steps.lap('waitUnion')
      if (union.mode === SyncMode.Deferred) {
        if (!pre) throw new ProtocolViolationError('sync deferred without a pre-copy offer')
        // The VM stays paused for the pre-copy; the next marker may bring the full sync.
        paused = false
        ch.setFloor(epoch + 1)
        this.emit('sync-skipped', epoch, 'pre-copy in progress')
        return undefined
      }
      if (needFull && !isFullSync(union.mode)) {
        throw new ProtocolViolationError(`asked for a full sync, primary chose ${SyncMode[union.mode]}`)
      }
      assertInRange(union.pages, vm.pageCount, 'union')
      // A full sync's union is every page (not sent on the wire).
      const pages = isFullSync(union.mode) ? allPages(vm.pageCount) : union.pages
      let hashMs = 0
      let hashedBytes = 0
      // Every pre-copy page is in the VM before it is hashed (they all precede the Union).
      if (pre) {
        await pre.writes
        steps.lap('precopyWrites')
      }
      if (isHashedSync(union.mode) && pages.length > 0) {
        const h0 = performance.now()
        const { digests: hashes, hashed } = await digestsOf(this.o, pages)
        hashMs = performance.now() - h0
        hashedBytes = hashed ? pages.length * vm.pageSize : 0
        await ch.send({ type: SyncMessageType.Hashes, epoch, hashes })
        steps.lap('hash')
      }

      // WHY write through on a full sync: an untrusted VM has no state to protect, so staging
      // would only hold a second copy of the transfer (all of RAM in the copy form). Its trust
      // still comes only with a verified TransferEnd and the device state.
      const writeThrough = needFull
      this.staging.begin(union.mode === SyncMode.Full ? null : pages, { keep: !writeThrough })
      for (;;) {
        const m = await ch.take(epoch, [SyncMessageType.Pages, SyncMessageType.TransferEnd], this.peerMs)
        if (m.type === SyncMessageType.Pages) {
          this.staging.add(m)
          if (writeThrough) {
            steps.lap('waitTransfer')
            await vm.writePages(m.indices, m.data)
            steps.lap('writePages')
          }
          continue
        }
        if (m.type !== SyncMessageType.TransferEnd) throw new ProtocolViolationError('expected TransferEnd')
        const staged = this.staging.finish(m, this.wholeDeviceState(m))
        steps.lap('waitTransfer')
        applying = true
        // Best effort: if the ack is lost, the primary keeps its dirty baseline, and the next
        // sync covers these pages again — harmless.
        const ack = () => ch.send({ type: SyncMessageType.Ack, epoch }).catch(() => {})
        if (this.ackAfter === 'staged') await ack()
        if (staged.indices.length > 0) await vm.writePages(staged.indices, staged.data)
        steps.lap('writePages')
        await vm.importDeviceState(staged.deviceState)
        steps.lap('importDeviceState')
        await tracker.reset()
        steps.lap('resetTracker')
        this.baseline = m.syncId
        this.device = { id: m.syncId, state: Uint8Array.from(staged.deviceState) }
        applying = false
        this.setTrusted(true)
        const precopiedPages = pre?.pages ?? 0
        if (pre) this.precopy = undefined
        if (this.ackAfter === 'applied') await ack()
        await vm.resume()
        steps.lap('resume')
        paused = false
        const t1 = performance.now()
        ch.setFloor(epoch + 1)
        // Pages this sync brought (staged, or written through on a full sync).
        const received = this.staging.stagedPages
        const report: SyncReport = {
          side: 'backup',
          epoch,
          mode: union.mode,
          dirtyPages: own.length,
          peerDirtyPages: 0,
          unionPages: pages.length,
          identicalPages: isHashedSync(union.mode) ? pages.length - received : 0,
          identicalPct:
            isHashedSync(union.mode) && pages.length > 0
              ? ((pages.length - received) / pages.length) * 100
              : 0,
          divergentPages: received,
          bytesSent: ch.bytesSent - sent0,
          bytesReceived: ch.bytesReceived - recv0,
          deviceStateBytes: staged.deviceState.length,
          deviceStateSentBytes: m.deviceState.length,
          pauseMs: t1 - pauseStart,
          totalMs: t1 - t0,
          hashMs,
          hashedBytes,
          hashMBps: mbps(hashedBytes, hashMs),
          stepsMs: steps.snapshot(),
          precopiedPages,
        }
        this.emit('sync-completed', report)
        return report
      }
    } catch (err) {
      const error = err as Error
      if (applying) this.setTrusted(false)
      if (!(error instanceof SyncAbortedError)) {
        ch.send({ type: SyncMessageType.Abort, epoch, reason: error.message }).catch(() => {})
        ch.close(error)
      }
      // A pre-copy still on an open link keeps the VM paused; endPrecopy resumes it otherwise.
      if (paused && this.precopy === undefined) await vm.resume().catch(() => {})
      this.emit('sync-failed', { side: 'backup', epoch, reason: error.message, error })
      return undefined
    }
  }

  private wholeDeviceState(end: TransferEndMsg): Uint8Array {
    if (end.deviceStateBase === 0) return end.deviceState
    if (end.deviceStateBase !== this.device?.id) {
      throw new ProtocolViolationError(
        `device-state delta against transfer ${end.deviceStateBase}, but this backup keeps ${this.device?.id ?? 'none'}`,
      )
    }
    return applyDeviceStateDelta(this.device.state, end.deviceState)
  }

  /** The VM's state stopped being a correct execution of the log (it missed inputs): sync fully next. */
  distrust(): void {
    this.setTrusted(false)
    this.maybeOfferPrecopy()
  }

  /** Untrusted, linked and between syncs: pause the VM and offer the primary a pre-copy. */
  private maybeOfferPrecopy(): void {
    const ch = this.channel
    if (this.o.precopy === false || !this.needFullFlag || !ch?.isOpen || this.syncing || this.precopy) return
    const { vm } = this.o
    const wasRunning = vm.runState === 'running'
    const offered = (async () => {
      await vm.pause()
      const { digests: hashes } = await digestsOf(this.o, allPages(vm.pageCount))
      await ch.send({ type: SyncMessageType.PrecopyOffer, epoch: 0, hashes })
    })().catch((err: Error) => ch.close(err))
    this.precopy = { channel: ch, offered, writes: offered, pages: 0, wasRunning }
  }

  private onPrecopyPages(ch: SyncChannel, m: PrecopyOfferMsg | PrecopyPagesMsg): void {
    const pre = this.precopy
    if (m.type !== SyncMessageType.PrecopyPages) return
    if (pre?.channel !== ch) {
      ch.close(new ProtocolViolationError('pre-copy pages without an offer'))
      return
    }
    const { vm } = this.o
    try {
      assertInRange(m.indices, vm.pageCount, 'pre-copy pages')
      if (m.data.length !== m.indices.length * vm.pageSize) {
        throw new ProtocolViolationError(
          `pre-copy batch carries ${m.data.length} bytes for ${m.indices.length} pages`,
        )
      }
    } catch (err) {
      ch.close(
        err instanceof ProtocolViolationError ? err : new ProtocolViolationError((err as Error).message),
      )
      return
    }
    pre.writes = pre.writes.then(async () => {
      if (this.precopy !== pre) return
      await vm.writePages(m.indices, m.data)
      // WHY now: a tracker that keeps digests (hash-scan) re-hashes just these pages, while the
      // primary still runs; left for later, all pre-copied pages would be hashed in its pause.
      await this.o.tracker.currentDigests?.()
      pre.pages += m.indices.length
      this.emit('precopy-pages', pre.pages)
    })
    pre.writes.catch((err: Error) => ch.close(err))
  }

  /** The link of the pre-copy closed: resume the VM (untrusted still) once no write is pending. */
  private endPrecopy(): void {
    const pre = this.precopy
    if (!pre) return
    this.precopy = undefined
    const { vm } = this.o
    pre.writes
      .catch(() => {})
      .then(() => (this.syncing || !pre.wasRunning ? undefined : vm.resume()))
      .catch(() => {})
  }

  private setTrusted(trusted: boolean): void {
    const needFull = !trusted
    if (needFull === this.needFullFlag) return
    this.needFullFlag = needFull
    this.emit('trust', trusted)
  }
}
