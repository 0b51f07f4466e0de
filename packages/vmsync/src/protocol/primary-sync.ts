// Primary side of the sync protocol (PLOVER's syncvm, primary half):
//   requestSync: propose SyncMarker(epoch, output count) into the log.
//   runSync (marker committed, every earlier input delivered):
//     wait quiet (bounded)  <- Dirty(backup paused; its set, its baseline | needFull)
//     pause -> seal outputs of this epoch -> collect own dirty set -> Union(mode, pages)
//     incremental (Vsmr/Remus): hash the union, copy its pages, export device state, reset the
//       dirty baseline to this cut -> resume (next epoch's inputs flow)
//       <- Hashes (Vsmr) -> divergent Pages* from the copy -> TransferEnd(checksum, device state)
//       <- Ack
//     full, compared (default in vsmr mode): as incremental with every page as the union
//     full, copied (remus mode, or fullSync 'copy'): Pages* (all) -> TransferEnd <- Ack -> reset
//       dirty baseline -> resume
//     full, after pre-copy: as compared, but waits for the Hashes while paused and copies only
//       the divergent pages (few by then)
//     -> protect outputs -> propose SyncDone(epoch)
//   SyncDone committed: release outputs of epochs <= it.
// Pre-copy (precopy-sender.ts): an untrusted backup pauses its VM and offers the hashes of all its
// pages (PrecopyOffer); rounds of PrecopyPages go out while this VM runs, and markers meanwhile
// get Union(Deferred) — no transfer — until the rounds converge.
// Any failure: Abort to the peer (best effort), drop the link, resume; held outputs are released
// unprotected once an Unprotect record proposed then commits (see unprotect()). The next sync
// still covers every page changed since the backup's own baseline: the dirty sets of cuts it
// never applied are kept (pagesSince).
import { randomInt } from 'node:crypto'
import { EventEmitter } from 'eventemitter3'
import { HASH_BYTES } from '../hashing/messages.js'
import type { SyncLink } from '../link/link.js'
import { LogRecordKind, type OrderedLog } from '../log/ordered-log.js'
import { StepTimer } from '../metrics/step-timer.js'
import { mbps, pct, type SyncFailure, type SyncReport } from '../metrics/sync-report.js'
import type { OutputGuard } from '../output/output-guard.js'
import { SyncChannel } from './channel.js'
import { TransferChecksum } from './checksum.js'
import { encodeDeviceStateDelta } from './device-state-delta.js'
import { type DuplicateMessageError, ProtocolViolationError, type StaleEpochError } from './errors.js'
import { encodeSyncDone, encodeSyncMarker, type SyncDone, type SyncMarker } from './marker.js'
import {
  type HashesMsg,
  isFullSync,
  isHashedSync,
  type PrecopyOfferMsg,
  type PrecopyPagesMsg,
  type SyncMessage,
  SyncMessageType,
  SyncMode,
} from './messages.js'
import { digestsOf } from './page-digests.js'
import { allPages, assertInRange, divergentPages, unionSorted } from './page-set.js'
import { type PrecopyOptions, type PrecopyRound, PrecopySender } from './precopy-sender.js'
import {
  DEFAULT_BATCH_PAGES,
  DEFAULT_PEER_TIMEOUT_MS,
  quiesceVm,
  type SyncSideOptions,
} from './sync-options.js'

export type TransferMode = 'vsmr' | 'remus'

/** A refused Unprotect proposal of a leader is tried again after this long. */
const UNPROTECT_RETRY_MS = 100

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
  /**
   * When the primary pauses once the marker is through its VM:
   * - 'with-backup' (default): at once, so it collects its dirty set while the backup collects
   *   its own. Two scans side by side instead of one after the other: a shorter sync, hence
   *   outputs released sooner. The pause may include the backup's lag to the marker — at worst
   *   peerTimeoutMs, if the backup stalls without its link dropping (the sync then fails, the
   *   guard unprotects and the VM resumes).
   * - 'after-backup-dirty': only once the backup's dirty set arrived; the VM runs meanwhile,
   *   keeping the backup's lag out of the pause, at the price of the scans in series.
   */
  readonly pauseAt?: PrimaryPausePoint
  /**
   * How a backup that needs a full sync gets one:
   * - 'compare' (default in vsmr mode): hash every page on both sides, send the divergent ones.
   *   The primary pauses only to hash and copy its RAM (tens of ms per 100 MiB), not for the
   *   whole transfer, and the pages a fresh backup already has are not sent. Costs a buffer the
   *   size of guest RAM during the sync.
   * - 'copy' (default in remus mode): send every page while paused, no hashing, no buffer.
   */
  readonly fullSync?: FullSyncMethod
  /**
   * Largest paused copy of the union the primary makes so that its VM can run during the
   * transfer (default 1 GiB). A bigger union — a compared full sync of a large guest, or a burst
   * that dirtied most of it — is sent straight from the VM, which then stays paused until the
   * Ack, instead of allocating its size again.
   */
  readonly maxCopyBytes?: number
  /**
   * Pre-copy to a backup that offers it (an untrusted one: BackupSyncOptions.precopy): send it
   * the pages it lacks while this VM runs, so its full sync pauses this VM only to hash RAM and
   * copy what changed since. Default on when full syncs are compared; false: ignore offers (the
   * backup then gets the plain full sync at the next marker).
   */
  readonly precopy?: PrecopyOptions | false
}

export type FullSyncMethod = 'compare' | 'copy'

/** A pre-copy running (or done, awaiting its full sync) to the backup on `channel`. */
interface PrecopyState {
  readonly channel: SyncChannel
  readonly sender: PrecopySender
  /** 'precopy-ready' was emitted (once per pre-copy). */
  announced: boolean
}

export type PrimaryPausePoint = 'with-backup' | 'after-backup-dirty'

/** Cuts a backup may still report as its baseline (it applied one whose Ack was lost, or none). */
const MAX_UNACKED_CUTS = 16
/** Copies larger than this are not kept for reuse by the next sync (incremental ones are small). */
const RETAIN_COPY_BYTES = 64 << 20
/** Default of PrimarySyncOptions.maxCopyBytes. */
export const DEFAULT_MAX_COPY_BYTES = 1 << 30
/** Device states kept as delta bases (the acked one plus a few whose Ack may have been lost). */
const MAX_DEVICE_BASES = 4

/** For each page of `subset` (ascending, within `union`), its position in `union`. */
function pageSlots(union: Uint32Array, subset: Uint32Array): Uint32Array {
  const out = new Uint32Array(subset.length)
  let j = 0
  for (let i = 0; i < subset.length; i++) {
    while (union[j] !== subset[i]) j++
    out[i] = j
  }
  return out
}

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
  /** A pre-copy round to an untrusted backup finished. */
  'precopy-round': (round: PrecopyRound) => void
  /** Pre-copy is done and no marker is pending: the next one runs the full sync (request it). */
  'precopy-ready': () => void
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
  private readonly pauseAt: PrimaryPausePoint
  private readonly fullSync: FullSyncMethod
  private readonly maxCopyBytes: number
  private pageBuf: Uint8Array
  /** Id of the transfer at whose cut the dirty tracker was last reset (0 = since the start). */
  private baseline: number
  /** Cuts since the last one a backup confirmed, with this side's dirty pages between them. */
  private readonly cuts: Array<{ from: number; to: number; pages: Uint32Array }> = []
  /** The running sync: it may still be transferring after its resume. */
  private inFlight: Promise<void> = Promise.resolve()
  private snapshot = new Uint8Array(0)
  /** Device states of recent transfers by id: a backup holding one gets the next as a delta. */
  private readonly deviceStates = new Map<number, Uint8Array>()
  private readonly precopyOptions: PrecopyOptions | false
  /** Pre-copy running (or done, awaiting its full sync) to the backup on `channel`. */
  private precopy: PrecopyState | undefined
  /** The backup was lost while outputs were held: an Unprotect record awaits its commit. */
  private unprotectRequest: { readonly reason: string } | undefined
  /** This side was replaced (demotion): nothing it proposed may act on the guard any more. */
  private disposed = false

  constructor(private readonly o: PrimarySyncOptions) {
    super()
    this.baseline = o.baselineId ?? 0
    this.mode = o.mode ?? 'vsmr'
    this.peerMs = o.peerTimeoutMs ?? DEFAULT_PEER_TIMEOUT_MS
    this.batchPages = o.batchPages ?? DEFAULT_BATCH_PAGES
    this.pauseAt = o.pauseAt ?? 'with-backup'
    this.fullSync = o.fullSync ?? (this.mode === 'vsmr' ? 'compare' : 'copy')
    this.maxCopyBytes = o.maxCopyBytes ?? DEFAULT_MAX_COPY_BYTES
    this.pageBuf = new Uint8Array(this.batchPages * o.vm.pageSize)
    this.precopyOptions = o.precopy ?? (this.fullSync === 'compare' ? {} : false)
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
      accepts: [
        SyncMessageType.Dirty,
        SyncMessageType.Hashes,
        SyncMessageType.Ack,
        SyncMessageType.Abort,
        SyncMessageType.PrecopyOffer,
      ],
    })
    ch.setFloor(this.floor)
    ch.on('rejected', (err, m) => this.onRejected(ch, err, m))
    ch.on('precopy', (m) => this.onPrecopyOffer(ch, m))
    ch.on('close', (err) => {
      if (this.precopy?.channel === ch) {
        this.precopy.sender.stop()
        this.precopy = undefined
      }
      if (this.channel !== ch) return
      this.channel = undefined
      this.unprotect(`backup link down: ${err?.message ?? 'closed'}`)
      this.emit('link-down', err)
    })
    this.channel = ch
  }

  /** Closes the backup link, if any. */
  detachLink(error?: Error): void {
    this.channel?.close(error)
  }

  /**
   * This primary side is done (the replica was demoted): closes the link, and a pending unprotect
   * can no longer release anything.
   */
  dispose(): void {
    this.disposed = true
    this.unprotectRequest = undefined
    this.detachLink()
  }

  /**
   * No backup can reproduce the outputs held now. WHY through the log: they may go out only while
   * this replica still leads, and a record proposed now that commits proves that it did after
   * they were produced. A primary cut off from the others, or deposed, never gets that commit:
   * its held outputs stay held until its step-down drops them, so it never answers a client
   * beside the new primary. From the commit on outputs pass through until a backup syncs.
   */
  private unprotect(reason: string): void {
    const guard = this.o.guard
    if (!guard.isProtected || this.unprotectRequest || this.disposed) return
    const request = { reason }
    this.unprotectRequest = request
    const current = () => this.unprotectRequest === request && !this.disposed
    const attempt = (): void => {
      this.o.log.propose(LogRecordKind.Unprotect, new Uint8Array(0)).then(
        () => {
          if (!current()) return
          this.unprotectRequest = undefined
          guard.unprotect(reason)
        },
        () => {
          // Not leader (any more): nothing is released; the step-down drops what is held. A
          // leader whose proposal was refused (e.g. too much uncommitted) tries again shortly.
          if (current() && this.o.log.isLeader) setTimeout(attempt, UNPROTECT_RETRY_MS).unref()
        },
      )
    }
    attempt()
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
   * before the marker has been delivered and none after it will be until `hooks.resumed` runs (or
   * this returns). Resolves when the sync is over (acknowledged, skipped or failed).
   *
   * WHY resume before the transfer (incremental syncs): everything the backup needs is taken
   * while paused (dirty set, copies of the union pages, their hashes, the device state), so the
   * VM can run on and take the next epoch's inputs while the pages travel; its outputs of this
   * epoch stay held until SyncDone commits, exactly as before. A full sync stays paused throughout
   * (copying all of RAM first would cost as much as sending it).
   */
  async runSync(
    marker: SyncMarker,
    hooks: { readonly resumed?: () => void } = {},
  ): Promise<SyncReport | undefined> {
    // One sync at a time: the previous one may still be transferring after its resume.
    await this.inFlight
    const run = this.runOne(marker, hooks)
    this.inFlight = run.then(() => {})
    return run
  }

  private async runOne(
    marker: SyncMarker,
    hooks: { readonly resumed?: () => void },
  ): Promise<SyncReport | undefined> {
    const epoch = marker.epoch
    this.noteEpoch(epoch)
    if (epoch < this.floor) {
      this.emit('sync-skipped', epoch, `marker epoch ${epoch} already superseded`)
      return undefined
    }
    const ch = this.channel
    if (!ch?.isOpen) {
      this.floor = epoch + 1
      this.unprotect(`no backup for sync ${epoch}`)
      this.emit('sync-skipped', epoch, 'no backup link')
      return undefined
    }
    this.floor = epoch
    ch.setFloor(epoch)
    const { vm, tracker, guard } = this.o
    const t0 = performance.now()
    let sent0 = ch.bytesSent
    const recv0 = ch.bytesReceived
    let paused = false
    /** Settles when an export started in this sync has finished (the VM must not resume before). */
    let exporting: Promise<void> = Promise.resolve()
    let pauseStart = 0
    let pauseMs = 0
    const steps = new StepTimer()
    const resume = async () => {
      await vm.resume()
      paused = false
      pauseMs = performance.now() - pauseStart
      steps.lap('resume')
      hooks.resumed?.()
    }
    try {
      await quiesceVm(this.o, 5, 50)
      steps.lap('quiesce')
      // No input after the marker reaches our VM, so the cut is fixed already; pauseAt only
      // trades pause time against sync length (see PrimarySyncOptions.pauseAt).
      const takeDirty = async () => {
        const m = await ch.take(epoch, [SyncMessageType.Dirty], this.peerMs)
        if (m.type !== SyncMessageType.Dirty) throw new ProtocolViolationError('expected Dirty')
        steps.lap('waitDirty')
        return m
      }
      // A backup whose pre-copy has not converged gets no sync at this marker.
      const defer = async (pre: PrecopyState) => {
        await ch.send({
          type: SyncMessageType.Union,
          epoch,
          mode: SyncMode.Deferred,
          pages: new Uint32Array(0),
        })
        this.floor = epoch + 1
        ch.setFloor(epoch + 1)
        this.unprotect('backup pre-copy in progress')
        if (paused) {
          await exporting
          await resume()
        }
        this.emit('sync-skipped', epoch, 'backup pre-copy in progress')
        // The rounds may have ended while this marker counted as pending.
        this.announceReady(pre)
      }
      // WHY the Dirty first while pre-copying: the backup may not be ready for its full sync, and
      // then this marker needs no pause at all.
      const precopying = this.precopy?.channel === ch ? this.precopy : undefined
      let dirty = this.pauseAt === 'after-backup-dirty' || precopying ? await takeDirty() : undefined
      if (precopying && dirty?.needFull && !precopying.sender.ready) {
        await defer(precopying)
        return undefined
      }
      await vm.pause()
      paused = true
      pauseStart = performance.now()
      steps.lap('pause')
      guard.seal(epoch)
      // WHY now: nothing changes device state while paused, and the export (QEMU's work) overlaps
      // the RAM scan (our hash workers) instead of adding to the pause after it.
      const exported = vm.exportDeviceState()
      exporting = exported.then(
        () => undefined,
        () => undefined,
      )
      const own = await tracker.collect()
      steps.lap('collect')
      dirty ??= await takeDirty()
      // An offer made after this sync began has arrived by now (it precedes the Dirty on the
      // ordered link). Its rounds have not run: resume and let them, rather than copy all of RAM
      // while paused.
      const pre = this.precopy?.channel === ch ? this.precopy : undefined
      if (pre && pre !== precopying && dirty.needFull && !pre.sender.ready) {
        await defer(pre)
        return undefined
      }
      // This sync supersedes the pre-copy on the link.
      let precopiedPages = 0
      if (pre) {
        await pre.sender.stop()
        precopiedPages = pre.sender.sentPages
        this.precopy = undefined
        // A last round may have been sending while we waited for the Dirty: not this sync's bytes.
        sent0 = ch.bytesSent
      }
      assertInRange(dirty.pages, vm.pageCount, 'backup dirty set')
      // WHY a full sync for a foreign baseline: a page changed on one side only since the last
      // state both shared is in neither dirty set if the other side's baseline is not that state
      // (e.g. this primary synced another backup since, or the backup was synced by another
      // primary). Our own earlier cuts the backup never applied are covered by their dirty sets.
      const missed = dirty.needFull ? undefined : this.pagesSince(dirty.baseline)
      const mode = !missed
        ? this.fullSync === 'compare'
          ? SyncMode.FullCompared
          : SyncMode.Full
        : this.mode === 'remus'
          ? SyncMode.Remus
          : SyncMode.Vsmr
      const union = isFullSync(mode)
        ? allPages(vm.pageCount)
        : unionSorted(unionSorted(own, dirty.pages), missed!)
      await ch.send({
        type: SyncMessageType.Union,
        epoch,
        mode,
        pages: isFullSync(mode) ? new Uint32Array(0) : union,
      })

      const syncId = randomInt(1, 2 ** 48)
      let toSend = union
      let identical = 0
      let hashMs = 0
      let hashedBytes = 0
      let deviceState: Uint8Array
      let deviceSent = 0
      const checksum = new TransferChecksum()
      let batches = 0
      if (mode === SyncMode.Full) {
        for (let i = 0; i < union.length; i += this.batchPages) {
          const indices = union.subarray(i, i + this.batchPages)
          const data = this.pageBuf.subarray(0, indices.length * vm.pageSize)
          await vm.readPages(indices, data)
          checksum.addPages(indices, data, vm.pageSize)
          await ch.send({
            type: SyncMessageType.Pages,
            epoch,
            seq: batches++,
            indices: indices.slice(),
            data,
          })
        }
        steps.lap('sendPages')
        deviceState = await exported
        steps.lap('exportDeviceState')
        deviceSent = await this.sendEnd(
          ch,
          epoch,
          union.length,
          batches,
          syncId,
          checksum,
          deviceState,
          dirty.deviceBase,
        )
        await ch.take(epoch, [SyncMessageType.Ack], this.peerMs)
        steps.lap('waitAck')
        await tracker.reset()
        steps.lap('resetTracker')
        this.cutAt(syncId, undefined)
        await resume()
      } else {
        // Everything the transfer needs, taken while paused.
        let local: Uint8Array | undefined
        if (isHashedSync(mode) && union.length > 0) {
          const h0 = performance.now()
          const d = await digestsOf(this.o, union)
          local = d.digests
          hashMs = performance.now() - h0
          hashedBytes = d.hashed ? union.length * vm.pageSize : 0
          steps.lap('hash')
        }
        const takeHashes = async (mine: Uint8Array) => {
          const peer = (await ch.take(epoch, [SyncMessageType.Hashes], this.peerMs)) as HashesMsg
          if (peer.hashes.length !== union.length * HASH_BYTES) {
            throw new ProtocolViolationError(
              `backup sent ${peer.hashes.length / HASH_BYTES} hashes for ${union.length} pages`,
            )
          }
          toSend = divergentPages(union, mine, peer.hashes)
          identical = union.length - toSend.length
          steps.lap('waitHashes')
        }
        // WHY wait for the backup's hashes while paused in a full sync after a pre-copy, or with
        // a trusted backup (a foreign baseline: it went its own way only since a recent cut): few
        // pages differ, so copying only those beats copying all of RAM (the backup hashes
        // meanwhile, from its tracker's scan when it keeps one).
        const fewDiffer = pre !== undefined || !dirty.needFull
        const copyAfterHashes = fewDiffer && mode === SyncMode.FullCompared && local !== undefined
        if (copyAfterHashes) await takeHashes(local!)
        const copied = copyAfterHashes ? toSend : union
        // Within the bound, copy those pages and let the VM run during the transfer; above it,
        // send from the paused VM (see PrimarySyncOptions.maxCopyBytes).
        const copy =
          copied.length * vm.pageSize <= this.maxCopyBytes
            ? this.snapshotBuffer(copied.length * vm.pageSize)
            : undefined
        if (copy) {
          if (copied.length > 0) await vm.readPages(copied, copy)
          steps.lap('copyPages')
        }
        deviceState = await exported
        steps.lap('exportDeviceState')
        await tracker.reset()
        steps.lap('resetTracker')
        // The tracker's baseline is now this cut; `own` is what the backup misses if it never
        // applies this transfer. After a full sync no older baseline is usable.
        this.cutAt(syncId, mode === SyncMode.FullCompared ? undefined : own)
        if (copy) await resume()

        if (local && !copyAfterHashes) await takeHashes(local)
        const slot = pageSlots(copied, toSend)
        for (let i = 0; i < toSend.length; i += this.batchPages) {
          const indices = toSend.slice(i, i + this.batchPages)
          const data = this.pageBuf.subarray(0, indices.length * vm.pageSize)
          if (!copy) await vm.readPages(indices, data)
          else
            for (let k = 0; k < indices.length; k++) {
              const from = slot[i + k]! * vm.pageSize
              data.set(copy.subarray(from, from + vm.pageSize), k * vm.pageSize)
            }
          checksum.addPages(indices, data, vm.pageSize)
          await ch.send({ type: SyncMessageType.Pages, epoch, seq: batches++, indices, data })
        }
        steps.lap('sendPages')
        this.releaseLargeCopy()
        deviceSent = await this.sendEnd(
          ch,
          epoch,
          toSend.length,
          batches,
          syncId,
          checksum,
          deviceState,
          dirty.deviceBase,
        )
        await ch.take(epoch, [SyncMessageType.Ack], this.peerMs)
        steps.lap('waitAck')
        if (!copy) await resume()
      }
      // The backup applied this cut: it is the common baseline now.
      this.acked(syncId)
      // A backup reproduces the held outputs again: a pending unprotect must not release them.
      this.unprotectRequest = undefined
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
        identicalPct: isHashedSync(mode) ? pct(identical, union.length) : 0,
        divergentPages: toSend.length,
        bytesSent: ch.bytesSent - sent0,
        bytesReceived: ch.bytesReceived - recv0,
        deviceStateBytes: deviceState.length,
        deviceStateSentBytes: deviceSent,
        pauseMs,
        totalMs: performance.now() - t0,
        hashMs,
        hashedBytes,
        hashMBps: mbps(hashedBytes, hashMs),
        stepsMs: steps.snapshot(),
        precopiedPages,
      }
      this.emit('sync-completed', report)
      return report
    } catch (err) {
      const error = err as Error
      this.floor = epoch + 1
      ch.send({ type: SyncMessageType.Abort, epoch, reason: error.message }).catch(() => {})
      // WHY drop the link: after a failed step neither side can tell what the other applied;
      // the backup reconnects and the next sync covers every page changed since the backup's
      // baseline (pagesSince).
      ch.close(error)
      this.unprotect(`sync ${epoch} failed: ${error.message}`)
      await exporting
      this.releaseLargeCopy()
      if (paused) await resume().catch(() => {})
      this.emit('sync-failed', { side: 'primary', epoch, reason: error.message, error })
      return undefined
    }
  }

  private async sendEnd(
    ch: SyncChannel,
    epoch: number,
    pageCount: number,
    batchCount: number,
    syncId: number,
    checksum: TransferChecksum,
    deviceState: Uint8Array,
    backupDeviceBase: number,
  ): Promise<number> {
    checksum.addDeviceState(deviceState)
    // Remus mode stays the Remus baseline: whole device state every time.
    const prior = this.mode === 'remus' ? undefined : this.deviceStates.get(backupDeviceBase)
    const delta = prior && encodeDeviceStateDelta(prior, deviceState)
    // A small state (or one that changed everywhere) goes whole: the delta would not be shorter.
    const base = delta && delta.length < deviceState.length ? prior : undefined
    const wire = base && delta ? delta : deviceState
    // WHY keep a copy per transfer: the backup may apply this one without its Ack reaching us.
    this.deviceStates.set(syncId, Uint8Array.from(deviceState))
    while (this.deviceStates.size > MAX_DEVICE_BASES) {
      this.deviceStates.delete(this.deviceStates.keys().next().value as number)
    }
    await ch.send({
      type: SyncMessageType.TransferEnd,
      epoch,
      pageCount,
      batchCount,
      syncId,
      checksum: checksum.digest(),
      deviceStateBase: base ? backupDeviceBase : 0,
      deviceState: wire,
    })
    return wire.length
  }

  /**
   * The dirty tracker was reset at the cut of transfer `syncId`. `own` (this side's dirty pages
   * since the previous cut) is kept until a backup confirms a later cut; undefined = a full sync,
   * after which only a backup at this cut can sync incrementally.
   */
  private cutAt(syncId: number, own: Uint32Array | undefined): void {
    if (own) {
      this.cuts.push({ from: this.baseline, to: syncId, pages: own })
      if (this.cuts.length > MAX_UNACKED_CUTS) this.cuts.shift()
    } else {
      this.cuts.length = 0
    }
    this.baseline = syncId
  }

  /** A backup applied the cut `syncId`: earlier cuts are no longer needed. */
  private acked(syncId: number): void {
    if (this.baseline === syncId) this.cuts.length = 0
  }

  /**
   * Pages this side changed between a backup's baseline and our tracker's baseline (empty if they
   * are the same), or undefined if that baseline is not one of our recent cuts: only a full sync
   * is correct then.
   */
  private pagesSince(backupBaseline: number): Uint32Array | undefined {
    if (backupBaseline === this.baseline) return new Uint32Array(0)
    const at = this.cuts.findIndex((c) => c.from === backupBaseline)
    if (at < 0) return undefined
    let pages: Uint32Array = new Uint32Array(0)
    for (const c of this.cuts.slice(at)) pages = unionSorted(pages, c.pages)
    return pages
  }

  /** A copy of most of RAM (a full sync) is not kept for the next, incremental, sync. */
  private releaseLargeCopy(): void {
    if (this.snapshot.byteLength > RETAIN_COPY_BYTES) this.snapshot = new Uint8Array(0)
  }

  /** A reusable buffer of at least `bytes` for the paused copy of the union pages. */
  private snapshotBuffer(bytes: number): Uint8Array {
    if (this.snapshot.byteLength < bytes)
      this.snapshot = new Uint8Array(Math.max(bytes, this.snapshot.byteLength * 2))
    return this.snapshot.subarray(0, bytes)
  }

  /** An untrusted backup paused its VM and offers pre-copy: start the rounds. */
  private onPrecopyOffer(ch: SyncChannel, m: PrecopyOfferMsg | PrecopyPagesMsg): void {
    if (m.type !== SyncMessageType.PrecopyOffer || this.precopyOptions === false) return
    const { vm } = this.o
    if (m.hashes.length !== vm.pageCount * HASH_BYTES) {
      ch.close(
        new ProtocolViolationError(
          `pre-copy offer carries ${m.hashes.length / HASH_BYTES} hashes for a VM of ${vm.pageCount} pages`,
        ),
      )
      return
    }
    this.precopy?.sender.stop()
    const sender = new PrecopySender(vm, this.o.hasher, ch, m.hashes, this.batchPages, this.precopyOptions)
    const state: PrecopyState = { channel: ch, sender, announced: false }
    this.precopy = state
    // One transfer at a time on the link: a sync may still be sending its pages.
    this.inFlight
      .then(() => sender.start((round) => this.emit('precopy-round', round)))
      .then(
        () => this.announceReady(state),
        (err: Error) => ch.close(err),
      )
  }

  /**
   * Rounds done: ask for the marker of the full sync ('precopy-ready'), once, unless a marker is
   * pending already (an epoch at or above the floor) — that one will run it.
   */
  private announceReady(state: PrecopyState): void {
    if (this.precopy !== state || !state.sender.ready || state.announced) return
    if (this.lastEpoch >= Math.max(this.floor, 1)) return
    state.announced = true
    this.emit('precopy-ready')
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
