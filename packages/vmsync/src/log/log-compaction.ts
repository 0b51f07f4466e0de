// When a replica may forget the head of its consensus log. A committed SyncDone(e) means the
// primary heard the backup acknowledge the sync cut at marker m_e: that backup's log holds every
// record up to m_e (it applied the marker), and both VMs' states account for every input up to
// it. No VM replica will ever need a record at or below m_e again — a replica whose log is behind
// it is fresh (a spare, a restarted process) and gets a full sync anyway — so every member, the
// witness included, may compact to m_e. Records after m_e (inputs of the next epoch, the SyncDone
// itself) are kept.
//
// Without this the log (every inbound frame the VM ever received) grows on disk and in memory
// for the life of the replica, and a restart replays all of it.
import { EventEmitter } from 'eventemitter3'
import { decodeSyncDone, decodeSyncMarker } from '../protocol/marker.js'
import { WireReader, WireWriter } from '../protocol/wire.js'
import { type LogRecord, LogRecordKind, type OrderedLogEvents } from './ordered-log.js'

/** The log being compacted (see ConsensusOrderedLog). */
export interface CompactableLog {
  /** Highest index applied here: a compaction point must not pass it. */
  readonly appliedIndex: number
  /** Highest index already compacted away (0 = none), by us or by a snapshot from the leader. */
  readonly compactedThrough: number
  /** Drop the log up to `index` (inclusive), recording `data` as the snapshot. */
  compact(index: number, data: Uint8Array): Promise<void>
}

/** Default of LogCompactionOptions.minEntries. */
export const DEFAULT_COMPACT_AFTER_ENTRIES = 8192

export interface LogCompactionOptions {
  /**
   * Compact once at least this many records lie between the last compaction point and the new
   * one (default DEFAULT_COMPACT_AFTER_ENTRIES). WHY not at every sync: each compaction writes
   * and fsyncs a snapshot file; the WAL frees disk only when a whole segment is covered anyway.
   */
  readonly minEntries?: number
}

export interface LogCompactionEvents {
  compacted: (index: number, epoch: number) => void
  /** A compaction failed; the next SyncDone tries again. */
  error: (error: Error) => void
}

/** What a compaction snapshot records: the sync whose cut it is. */
export interface CompactionPoint {
  readonly epoch: number
  readonly markerIndex: number
}

const POINT_VERSION = 1
/** Markers remembered while their SyncDone is pending (failed syncs never get one). */
const MAX_PENDING_MARKERS = 1024

export function encodeCompactionPoint(p: CompactionPoint): Uint8Array {
  return new WireWriter(24).u8(POINT_VERSION).u64(p.epoch).u64(p.markerIndex).finish()
}

/** Throws MalformedMessageError on bad bytes. */
export function decodeCompactionPoint(data: Uint8Array): CompactionPoint {
  const r = new WireReader(data)
  const v = r.u8('compaction point version')
  if (v !== POINT_VERSION) r.fail(`unsupported compaction point version ${v}`)
  const p = { epoch: r.u64('epoch'), markerIndex: r.u64('markerIndex') }
  r.end('CompactionPoint')
  return p
}

export class LogCompaction extends EventEmitter<LogCompactionEvents> {
  private readonly minEntries: number
  /** Marker index per epoch, for syncs whose SyncDone has not been applied yet. */
  private readonly markers = new Map<number, number>()
  /** The newest safe point seen, not compacted yet. */
  private due: CompactionPoint | undefined
  private running = false
  /** The due point waited for the log to count its marker as applied: retry on the next record. */
  private waitingForApplied = false
  private detached = false
  private readonly onApply = (r: LogRecord) => this.observe(r)
  private compactionsValue = 0

  constructor(
    /** The committed records (an OrderedLog). */
    private readonly records: EventEmitter<OrderedLogEvents>,
    private readonly log: CompactableLog,
    opts: LogCompactionOptions = {},
  ) {
    super()
    this.minEntries = opts.minEntries ?? DEFAULT_COMPACT_AFTER_ENTRIES
    if (!Number.isInteger(this.minEntries) || this.minEntries < 1)
      throw new RangeError(`minEntries must be a positive integer, got ${this.minEntries}`)
    records.on('apply', this.onApply)
  }

  /** Compactions completed by this instance. */
  get compactions(): number {
    return this.compactionsValue
  }

  detach(): void {
    this.detached = true
    this.records.off('apply', this.onApply)
  }

  private observe(r: LogRecord): void {
    if (r.kind === LogRecordKind.SyncMarker) {
      // Undecodable markers are the input delivery's to report; they are no compaction point.
      try {
        this.markers.set(decodeSyncMarker(r.data).epoch, r.index)
      } catch {}
      if (this.markers.size > MAX_PENDING_MARKERS) {
        const oldest = this.markers.keys().next().value
        if (oldest !== undefined) this.markers.delete(oldest)
      }
    } else if (r.kind === LogRecordKind.SyncDone) {
      let epoch: number
      try {
        epoch = decodeSyncDone(r.data).epoch
      } catch {
        return
      }
      const markerIndex = this.markers.get(epoch)
      for (const e of this.markers.keys()) if (e <= epoch) this.markers.delete(e)
      // The marker lies before our log (restart from a snapshot, snapshot from the leader).
      if (markerIndex === undefined) return
      if (!this.due || markerIndex > this.due.markerIndex) this.due = { epoch, markerIndex }
      this.maybeCompact()
    } else if (this.waitingForApplied) this.maybeCompact()
  }

  /** Runs at a SyncDone (and on the records after one that had to wait), not at every record. */
  private maybeCompact(): void {
    this.waitingForApplied = false
    const due = this.due
    if (!due || this.running || this.detached) return
    const from = this.log.compactedThrough
    if (due.markerIndex <= from) {
      this.due = undefined
      return
    }
    if (due.markerIndex - from < this.minEntries) return
    // 'apply' fires before the log counts the record as applied: retry on a later record.
    if (due.markerIndex > this.log.appliedIndex) {
      this.waitingForApplied = true
      return
    }
    this.due = undefined
    this.running = true
    this.log
      .compact(due.markerIndex, encodeCompactionPoint(due))
      .then(
        () => {
          this.compactionsValue++
          this.emit('compacted', due.markerIndex, due.epoch)
        },
        (err: unknown) => this.emit('error', err instanceof Error ? err : new Error(String(err))),
      )
      .finally(() => {
        this.running = false
      })
  }
}
