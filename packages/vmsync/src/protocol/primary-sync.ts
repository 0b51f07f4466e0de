// Primary side of the sync protocol (PLOVER's syncvm, primary half):
//   requestSync: propose SyncMarker(epoch, output count) into the log.
//   runSync (marker committed, every earlier input delivered):
//     wait quiet (bounded)  <- Dirty(backup paused; its set | needFull)
//     pause -> seal outputs of this epoch -> collect own dirty set -> Union(mode, pages) ->
//     hash union locally  <- Hashes           (Vsmr only; Remus/Full send every page)
//     -> Pages* -> TransferEnd(count, checksum, device state)   <- Ack
//     reset dirty baseline -> resume -> protect outputs -> propose SyncDone(epoch)
//   SyncDone committed: release outputs of epochs <= it.
// Any failure: Abort to the peer (best effort), drop the link, keep the dirty baseline (the next
// sync still covers every page changed since the last *acknowledged* one), release held outputs
// unprotected, resume.
import { randomInt } from 'node:crypto'
import { EventEmitter } from 'eventemitter3'
import type { SyncLink } from '../link/link.js'
import { LogRecordKind, type OrderedLog } from '../log/ordered-log.js'
import { mbps, pct, type SyncFailure, type SyncReport } from '../metrics/sync-report.js'
import type { OutputGuard } from '../output/output-guard.js'
import { SyncChannel } from './channel.js'
import { TransferChecksum } from './checksum.js'
import { type DuplicateMessageError, ProtocolViolationError, type StaleEpochError } from './errors.js'
import { encodeSyncDone, encodeSyncMarker, type SyncDone, type SyncMarker } from './marker.js'
import { type HashesMsg, type SyncMessage, SyncMessageType, SyncMode } from './messages.js'
import { allPages, assertInRange, divergentPages, unionSorted } from './page-set.js'
import {
  DEFAULT_BATCH_PAGES,
  DEFAULT_PEER_TIMEOUT_MS,
  quiesceVm,
  type SyncSideOptions,
} from './sync-options.js'

export type TransferMode = 'vsmr' | 'remus'

export interface PrimarySyncOptions extends SyncSideOptions {
  readonly log: OrderedLog
  readonly guard: OutputGuard
  /** 'vsmr' (default): send only divergent pages. 'remus': every dirty page, no hashing. */
  readonly mode?: TransferMode
  /**
   * Id of the transfer the VM's dirty baseline dates from (default 0: since the start). VmReplica
   * passes a promoted backup's on; see DirtyMsg.baseline.
   */
  readonly baselineId?: number
}

/** Transfers sent since the last Ack that a backup may still report as its baseline. */
const MAX_UNACKED = 16

export interface PrimarySyncEvents {
  'sync-completed': (report: SyncReport) => void
  'sync-failed': (failure: SyncFailure) => void
  /** A marker committed while no backup link was up: nothing to sync with. */
  'sync-skipped': (epoch: number, reason: string) => void
  /** A stale/duplicate message was dropped. */
  rejected: (error: StaleEpochError | DuplicateMessageError) => void
  /** The backup link went away (error says why, e.g. garbage on the link). */
  'link-down': (error?: Error) => void
  /** SyncDone(epoch) committed; outputs of that epoch were released. */
  committed: (epoch: number) => void
}

export class PrimarySync extends EventEmitter<PrimarySyncEvents> {
  private channel: SyncChannel | undefined
  private mode: TransferMode
  /** Highest epoch seen in a committed marker or proposed here. */
  private lastEpoch = 0
  /** Messages below this epoch are stale on any (current or future) link. */
  private floor = 0
  private readonly peerMs: number
  private readonly batchPages: number
  private pageBuf: Uint8Array
  /** Id of the transfer whose Ack last reset the dirty baseline (0 = since the start). */
  private baseline: number
  /** Transfers sent since then whose Ack never came: the backup may have applied them. */
  private readonly unacked: number[] = []

  constructor(private readonly o: PrimarySyncOptions) {
    super()
    this.baseline = o.baselineId ?? 0
    this.mode = o.mode ?? 'vsmr'
    this.peerMs = o.peerTimeoutMs ?? DEFAULT_PEER_TIMEOUT_MS
    this.batchPages = o.batchPages ?? DEFAULT_BATCH_PAGES
    this.pageBuf = new Uint8Array(this.batchPages * o.vm.pageSize)
  }

  get hasBackup(): boolean {
    return this.channel?.isOpen ?? false
  }

  /** Id of the transfer the dirty baseline dates from (see DirtyMsg.baseline). */
  get baselineId(): number {
    return this.baseline
  }

  get transferMode(): TransferMode {
    return this.mode
  }

  setMode(mode: TransferMode): void {
    this.mode = mode
  }

  /** A backup connected (authenticated link). Replaces any previous one. */
  attachLink(link: SyncLink): void {
    this.channel?.close()
    const ch = new SyncChannel(link, {
      accepts: [SyncMessageType.Dirty, SyncMessageType.Hashes, SyncMessageType.Ack, SyncMessageType.Abort],
    })
    ch.setFloor(this.floor)
    ch.on('rejected', (err, m) => this.onRejected(ch, err, m))
    ch.on('close', (err) => {
      if (this.channel !== ch) return
      this.channel = undefined
      this.o.guard.unprotect(`backup link down: ${err?.message ?? 'closed'}`)
      this.emit('link-down', err)
    })
    this.channel = ch
  }

  /** Closes the backup link, if any. */
  detachLink(error?: Error): void {
    this.channel?.close(error)
  }

  /** Record a committed marker's epoch (every replica sees every marker). */
  noteEpoch(epoch: number): void {
    if (epoch > this.lastEpoch) this.lastEpoch = epoch
  }

  /**
   * Every sync epoch <= `epoch` is over: a marker or message for one of them is stale, and a
   * backup that sends Dirty for one (e.g. replaying old markers after it joined) gets an Abort at
   * once instead of waiting a peer timeout. Called when this replica becomes primary, with the
   * highest epoch its log has applied: those syncs belonged to earlier primaries (or were run
   * here) and can never complete against this side.
   */
  closeEpochsThrough(epoch: number): void {
    this.noteEpoch(epoch)
    if (epoch + 1 <= this.floor) return
    this.floor = epoch + 1
    this.channel?.setFloor(this.floor)
  }

  /** Proposes the next SYNC marker; resolves with its epoch once committed. */
  async requestSync(): Promise<number> {
    const epoch = ++this.lastEpoch
    const marker: SyncMarker = { epoch, outputCount: this.o.guard.stats().emittedFrames }
    await this.o.log.propose(LogRecordKind.SyncMarker, encodeSyncMarker(marker))
    return epoch
  }

  /** SyncDone committed: outputs of epochs <= done.epoch may reach clients. */
  onSyncDone(done: SyncDone): void {
    this.o.guard.release(done.epoch)
    this.emit('committed', done.epoch)
  }

  /**
   * Runs the sync of a committed marker. Called by the input delivery barrier, so every input
   * before the marker has been delivered and none after it will be until this returns.
   */
  async runSync(marker: SyncMarker): Promise<SyncReport | undefined> {
    const epoch = marker.epoch
    this.noteEpoch(epoch)
    if (epoch < this.floor) {
      this.emit('sync-skipped', epoch, `marker epoch ${epoch} already superseded`)
      return undefined
    }
    const ch = this.channel
    if (!ch?.isOpen) {
      this.floor = epoch + 1
      this.o.guard.unprotect(`no backup for sync ${epoch}`)
      this.emit('sync-skipped', epoch, 'no backup link')
      return undefined
    }
    this.floor = epoch
    ch.setFloor(epoch)
    const { vm, tracker, hasher, guard } = this.o
    const t0 = performance.now()
    const sent0 = ch.bytesSent
    const recv0 = ch.bytesReceived
    let paused = false
    let pauseStart = 0
    try {
      await quiesceVm(this.o, 5, 50)
      // WHY wait for the backup before pausing: no input after the marker reaches our VM, so the
      // cut is already fixed; running on until the backup is paused too keeps the backup's log
      // lag and quiet wait out of our pause time.
      const dirty = await ch.take(epoch, [SyncMessageType.Dirty], this.peerMs)
      if (dirty.type !== SyncMessageType.Dirty) throw new ProtocolViolationError('expected Dirty')
      await vm.pause()
      paused = true
      pauseStart = performance.now()
      guard.seal(epoch)
      const own = await tracker.collect()
      assertInRange(dirty.pages, vm.pageCount, 'backup dirty set')
      // WHY a full sync for a foreign baseline: a page changed on one side only since the last
      // state both shared is in neither dirty set if the other side's baseline is not that state
      // (e.g. this primary synced another backup since, or the backup was synced by another primary).
      const sameBaseline = dirty.baseline === this.baseline || this.unacked.includes(dirty.baseline)
      const mode =
        dirty.needFull || !sameBaseline
          ? SyncMode.Full
          : this.mode === 'remus'
            ? SyncMode.Remus
            : SyncMode.Vsmr
      const union = mode === SyncMode.Full ? allPages(vm.pageCount) : unionSorted(own, dirty.pages)
      await ch.send({
        type: SyncMessageType.Union,
        epoch,
        mode,
        pages: mode === SyncMode.Full ? new Uint32Array(0) : union,
      })

      let toSend = union
      let identical = 0
      let hashMs = 0
      let hashedBytes = 0
      if (mode === SyncMode.Vsmr && union.length > 0) {
        const h0 = performance.now()
        const localP = hasher.hash(vm.memorySource, union).then((h) => {
          hashMs = performance.now() - h0
          return h
        })
        // WHY catch-then-rethrow: if the peer wait fails first, the local hash must not become
        // an unhandled rejection.
        localP.catch(() => {})
        const peer = (await ch.take(epoch, [SyncMessageType.Hashes], this.peerMs)) as HashesMsg
        const local = await localP
        hashedBytes = union.length * vm.pageSize
        if (peer.hashes.length !== union.length * 16) {
          throw new ProtocolViolationError(
            `backup sent ${peer.hashes.length / 16} hashes for ${union.length} pages`,
          )
        }
        toSend = divergentPages(union, local, peer.hashes)
        identical = union.length - toSend.length
      }

      const checksum = new TransferChecksum()
      let batches = 0
      for (let i = 0; i < toSend.length; i += this.batchPages) {
        const indices = toSend.slice(i, i + this.batchPages)
        const data = this.pageBuf.subarray(0, indices.length * vm.pageSize)
        await vm.readPages(indices, data)
        checksum.addPages(indices, data, vm.pageSize)
        await ch.send({ type: SyncMessageType.Pages, epoch, seq: batches++, indices, data })
      }
      const deviceState = await vm.exportDeviceState()
      checksum.addDeviceState(deviceState)
      const syncId = randomInt(1, 2 ** 48)
      this.unacked.push(syncId)
      if (this.unacked.length > MAX_UNACKED) this.unacked.shift()
      await ch.send({
        type: SyncMessageType.TransferEnd,
        epoch,
        pageCount: toSend.length,
        batchCount: batches,
        syncId,
        checksum: checksum.digest(),
        deviceState,
      })
      await ch.take(epoch, [SyncMessageType.Ack], this.peerMs)

      // The backup now equals us on every page: a new common baseline.
      await tracker.reset()
      this.baseline = syncId
      this.unacked.length = 0
      await vm.resume()
      paused = false
      const t1 = performance.now()
      guard.protect()
      this.floor = epoch + 1
      ch.setFloor(epoch + 1)
      // Completion goes through the log so outputs are released only once it is durable; a
      // deposed primary's proposal fails and its outputs stay held (then dropped on step-down).
      this.o.log.propose(LogRecordKind.SyncDone, encodeSyncDone({ epoch })).catch((err: Error) => {
        this.emit('sync-failed', { side: 'primary', epoch, reason: 'SyncDone not committed', error: err })
      })
      const report: SyncReport = {
        side: 'primary',
        epoch,
        mode,
        dirtyPages: own.length,
        peerDirtyPages: dirty.pages.length,
        unionPages: union.length,
        identicalPages: identical,
        identicalPct: mode === SyncMode.Vsmr ? pct(identical, union.length) : 0,
        divergentPages: toSend.length,
        bytesSent: ch.bytesSent - sent0,
        bytesReceived: ch.bytesReceived - recv0,
        deviceStateBytes: deviceState.length,
        pauseMs: t1 - pauseStart,
        totalMs: t1 - t0,
        hashMs,
        hashedBytes,
        hashMBps: mbps(hashedBytes, hashMs),
      }
      this.emit('sync-completed', report)
      return report
    } catch (err) {
      const error = err as Error
      this.floor = epoch + 1
      ch.send({ type: SyncMessageType.Abort, epoch, reason: error.message }).catch(() => {})
      // WHY drop the link: after a failed step neither side can tell what the other applied;
      // the backup reconnects and the next sync (dirty baseline untouched) covers everything.
      ch.close(error)
      guard.unprotect(`sync ${epoch} failed: ${error.message}`)
      if (paused) await vm.resume().catch(() => {})
      this.emit('sync-failed', { side: 'primary', epoch, reason: error.message, error })
      return undefined
    }
  }

  private onRejected(ch: SyncChannel, err: StaleEpochError | DuplicateMessageError, m: SyncMessage): void {
    this.emit('rejected', err)
    // A backup that reached an old marker (e.g. replayed after restart) would wait for a Union
    // that never comes: tell it that epoch is over.
    if (m.type === SyncMessageType.Dirty && err.name === 'StaleEpochError') {
      ch.send({ type: SyncMessageType.Abort, epoch: m.epoch, reason: 'stale epoch' }).catch(() => {})
    }
  }
}
