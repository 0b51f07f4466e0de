import { fdatasyncSync, promises as fsp, writeSync, writevSync } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { DecodeError } from '../codec/errors.js'
import { DEFAULT_LIMITS, type DecodeLimits } from '../codec/limits.js'
import { ByteWriter } from '../codec/writer.js'
import type { Entry, HardState, Snapshot } from '../core/types.js'
import { StorageError } from './errors.js'
import { atomicWriteFile, fsyncDir } from './fsutil.js'
import { decodeRecordBody, FRAME_HEADER, RecordType, readFrame, writeRecord } from './record.js'
import { LogReplay } from './replay.js'
import { decodeSnapshotFile, encodeSnapshotFile } from './snapshot-file.js'

// Append-only write-ahead log in segment files plus snapshot files, in one directory:
//   <seq:016x>.wal          segments; each starts with an 8-byte header and a HardState record
//   snap-<index:016x>.snap  the newest snapshot (atomic write, checksummed)
// Hard state is a WAL record (not a separate file): it shares the batch's single fdatasync with
// the entries, and a CRC-framed record is all-or-nothing, which is the atomicity we need.

const SEGMENT_MAGIC = [0x50, 0x4c, 0x57, 0x4c, 1, 0, 0, 0] // "PLWL", version 1, padding
const SEG_RE = /^([0-9a-f]{16})\.wal$/
const SNAP_RE = /^snap-([0-9a-f]{16})\.snap$/

export interface WalOptions {
  /** Rotate to a new segment once the current one reaches this size. Default 64 MiB. */
  readonly segmentBytes?: number
  /** Largest record accepted when reading. Default 64 MiB + 64 KiB. */
  readonly maxRecordBytes?: number
  /**
   * 'threadpool' (default): write + fdatasync on libuv's thread pool; batches queued while an
   * fsync is in flight share the next one. 'inline': write + fdatasync on the calling thread,
   * deferred with setImmediate so everything queued in the same turn shares one fsync. Inline
   * blocks the event loop for the fsync (~0.2–1 ms on SSD) but saves two thread hand-offs per
   * fsync, which dominate commit latency when many processes share few cores.
   */
  readonly io?: 'threadpool' | 'inline'
  readonly limits?: DecodeLimits
}

export interface SaveBatch {
  readonly hardState?: HardState
  /** Entries to append; entries[0].index may be <= the last index (overwrites that suffix). */
  readonly entries?: readonly Entry[]
  /** A snapshot received from the leader: replaces the whole log up to and including it. */
  readonly snapshot?: Snapshot
  /**
   * Default true: resolve only after fdatasync. false: resolve once written (in order, after
   * everything saved before it); it becomes durable with the next synced batch. For records
   * that may be lost in a crash, e.g. a hard state whose only change is the commit index.
   */
  readonly sync?: boolean
}

export interface Recovered {
  readonly hardState: HardState
  readonly snapshot?: Snapshot
  /** Entries after the snapshot, contiguous. */
  readonly entries: readonly Entry[]
  /** Set when recovery cut a torn/corrupt tail off the last segment. */
  readonly truncatedTail?: { readonly segment: string; readonly offset: number; readonly reason: string }
}

interface Segment {
  readonly seq: number
  readonly name: string
  /** Highest entry index written into it (0 if none). */
  maxIndex: number
}

interface Pending {
  readonly sync: boolean
  readonly buf: Uint8Array
  readonly maxIndex: number
  readonly hardState?: HardState
  readonly snapshot?: Snapshot
  readonly resolve: () => void
  readonly reject: (e: Error) => void
}

const segName = (seq: number) => `${seq.toString(16).padStart(16, '0')}.wal`
const snapName = (index: number) => `snap-${index.toString(16).padStart(16, '0')}.snap`

export class Wal {
  private queue: Pending[] = []
  private flushing = false
  private idle: (() => void)[] = []
  private error: StorageError | undefined
  private closed = false
  private hardState: HardState

  private constructor(
    readonly dir: string,
    private readonly io: 'threadpool' | 'inline',
    private readonly segmentBytes: number,
    private segments: Segment[],
    private fh: FileHandle,
    private size: number,
    readonly recovered: Recovered,
    private snapIndex: number,
  ) {
    this.hardState = recovered.hardState
  }

  /** The error that put this storage in the failed state, if any. */
  get failure(): StorageError | undefined {
    return this.error
  }

  static async open(dir: string, opts: WalOptions = {}): Promise<Wal> {
    const segmentBytes = opts.segmentBytes ?? 64 * 1024 * 1024
    const maxRecord = opts.maxRecordBytes ?? 64 * 1024 * 1024 + 65_536
    const limits = opts.limits ?? DEFAULT_LIMITS
    try {
      await fsp.mkdir(dir, { recursive: true })
      const names = await fsp.readdir(dir)
      for (const n of names) if (n.endsWith('.tmp')) await fsp.unlink(join(dir, n))
      const snaps = names.filter((n) => SNAP_RE.test(n)).sort()
      let snapshot: Snapshot | undefined
      if (snaps.length > 0) {
        const name = snaps[snaps.length - 1]
        try {
          snapshot = decodeSnapshotFile(await fsp.readFile(join(dir, name)), limits)
        } catch (e) {
          if (e instanceof DecodeError) throw new StorageError('corrupt', `snapshot ${name}: ${e.message}`)
          throw e
        }
      }
      const segs: Segment[] = names
        .filter((n) => SEG_RE.test(n))
        .sort()
        .map((name) => ({ name, seq: Number.parseInt(SEG_RE.exec(name)![1], 16), maxIndex: 0 }))

      const replay = new LogReplay()
      let truncatedTail: Recovered['truncatedTail']
      for (let i = 0; i < segs.length; i++) {
        const seg = segs[i]
        const isLast = i === segs.length - 1
        const path = join(dir, seg.name)
        const buf = await fsp.readFile(path)
        const cut = scanSegment(buf, seg, isLast, maxRecord, limits, replay)
        if (cut) {
          truncatedTail = { segment: seg.name, offset: cut.offset, reason: cut.reason }
          await truncateFile(path, cut.offset)
        }
      }
      const entries = replay.finish(snapshot)

      let size: number
      let fh: FileHandle
      if (segs.length === 0) {
        const seg = { seq: 1, name: segName(1), maxIndex: 0 }
        segs.push(seg)
        ;({ fh, size } = await createSegment(dir, seg.name, replay.hardState))
      } else {
        const last = segs[segs.length - 1]
        fh = await fsp.open(join(dir, last.name), 'r+')
        size = (await fh.stat()).size
        if (size < FRAME_HEADER) {
          // Torn segment creation: rewrite its header.
          await fh.write(Uint8Array.from(SEGMENT_MAGIC), 0, SEGMENT_MAGIC.length, 0)
          await fh.datasync()
          size = SEGMENT_MAGIC.length
        }
      }
      const recovered: Recovered = { hardState: replay.hardState, snapshot, entries, truncatedTail }
      return new Wal(
        dir,
        opts.io ?? 'threadpool',
        segmentBytes,
        segs,
        fh,
        size,
        recovered,
        snapshot?.meta.index ?? 0,
      )
    } catch (e) {
      if (e instanceof StorageError) throw e
      throw new StorageError('io', `opening WAL in ${dir}: ${(e as Error).message}`, { cause: e })
    }
  }

  /**
   * Durably append a batch. Resolves only after fdatasync; batches queued while an fsync is in
   * flight are written together and covered by the next single fsync (group commit).
   */
  save(batch: SaveBatch): Promise<void> {
    if (this.error) return Promise.reject(this.error)
    if (this.closed) return Promise.reject(new StorageError('closed', 'WAL is closed'))
    let size = 256
    for (const e of batch.entries ?? []) size += e.data.length + 40
    const w = new ByteWriter(size)
    if (batch.snapshot) {
      const { index, term } = batch.snapshot.meta
      writeRecord(w, { type: RecordType.SnapshotInstall, index, term })
    }
    let maxIndex = 0
    for (const entry of batch.entries ?? []) {
      writeRecord(w, { type: RecordType.Entry, entry })
      maxIndex = Math.max(maxIndex, entry.index)
    }
    if (batch.hardState) writeRecord(w, { type: RecordType.HardState, hardState: batch.hardState })
    return new Promise((resolve, reject) => {
      this.queue.push({
        sync: batch.sync ?? true,
        buf: w.finish(),
        maxIndex,
        hardState: batch.hardState,
        snapshot: batch.snapshot,
        resolve,
        reject,
      })
      this.kick()
    })
  }

  /**
   * Local compaction: durably store a snapshot the application took at `meta.index` (already
   * applied, so it matches the log) and drop segments wholly covered by it.
   */
  compact(snapshot: Snapshot): Promise<void> {
    if (this.error) return Promise.reject(this.error)
    if (this.closed) return Promise.reject(new StorageError('closed', 'WAL is closed'))
    return new Promise((resolve, reject) => {
      this.queue.push({ sync: true, buf: new Uint8Array(0), maxIndex: 0, snapshot, resolve, reject })
      this.kick()
    })
  }

  /** Wait for queued batches, then close the file. Further saves reject. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.flushing) await new Promise<void>((r) => this.idle.push(r))
    await this.fh.close().catch(() => {})
  }

  private kick(): void {
    if (this.flushing) return
    this.flushing = true
    if (this.io === 'inline') setImmediate(() => void this.flushLoop())
    else void this.flushLoop()
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.error) {
        const batch = this.queue
        this.queue = []
        try {
          await this.writeBatch(batch)
        } catch (e) {
          this.fail(e, batch)
        }
      }
    } finally {
      this.flushing = false
      for (const r of this.idle.splice(0)) r()
    }
  }

  private async writeBatch(batch: Pending[]): Promise<void> {
    let snap: Snapshot | undefined
    for (const p of batch)
      if (p.snapshot && (!snap || p.snapshot.meta.index >= snap.meta.index)) snap = p.snapshot
    // Snapshot file before the records that refer to it (recovery checks that it exists).
    if (snap && snap.meta.index > this.snapIndex) {
      await atomicWriteFile(this.dir, snapName(snap.meta.index), encodeSnapshotFile(snap))
    }
    const bufs = batch.map((p) => p.buf).filter((b) => b.length > 0)
    let total = 0
    for (const b of bufs) total += b.length
    const needSync = batch.some((p) => p.sync)
    if (total > 0) {
      if (this.size >= this.segmentBytes) await this.rotate()
      if (this.io === 'inline') {
        let off = writevSync(this.fh.fd, bufs, this.size)
        if (off < total) {
          const all = Buffer.concat(bufs)
          while (off < total) {
            const n = writeSync(this.fh.fd, all, off, total - off, this.size + off)
            if (n === 0) throw new Error('write made no progress')
            off += n
          }
        }
        if (needSync) fdatasyncSync(this.fh.fd)
      } else {
        await writeFully(this.fh, bufs, total, this.size)
        if (needSync) await this.fh.datasync()
      }
      this.size += total
    }
    const cur = this.segments[this.segments.length - 1]
    for (const p of batch) {
      cur.maxIndex = Math.max(cur.maxIndex, p.maxIndex)
      if (p.hardState) this.hardState = p.hardState
    }
    if (snap && snap.meta.index > this.snapIndex) {
      this.snapIndex = snap.meta.index
      await this.dropCovered()
    }
    for (const p of batch) p.resolve()
  }

  private async rotate(): Promise<void> {
    const seq = this.segments[this.segments.length - 1].seq + 1
    const name = segName(seq)
    const { fh, size } = await createSegment(this.dir, name, this.hardState)
    await this.fh.close()
    this.fh = fh
    this.size = size
    this.segments.push({ seq, name, maxIndex: 0 })
  }

  /** Delete old snapshot files and the prefix of segments whose entries are all in the snapshot. */
  private async dropCovered(): Promise<void> {
    const keep = snapName(this.snapIndex)
    for (const n of await fsp.readdir(this.dir)) {
      if (SNAP_RE.test(n) && n !== keep) await fsp.unlink(join(this.dir, n))
    }
    while (this.segments.length > 1 && this.segments[0].maxIndex <= this.snapIndex) {
      await fsp.unlink(join(this.dir, this.segments[0].name))
      this.segments.shift()
    }
    await fsyncDir(this.dir)
  }

  private fail(e: unknown, batch: Pending[]): void {
    const err =
      e instanceof StorageError
        ? e
        : new StorageError('io', `WAL write failed in ${this.dir}: ${(e as Error).message}`, { cause: e })
    this.error = err
    // Everything queued behind the failure is rejected too: nothing may be acknowledged.
    for (const p of [...batch, ...this.queue.splice(0)]) p.reject(err)
  }
}

async function createSegment(
  dir: string,
  name: string,
  hs: HardState,
): Promise<{ fh: FileHandle; size: number }> {
  const w = new ByteWriter(64)
  w.raw(Uint8Array.from(SEGMENT_MAGIC))
  writeRecord(w, { type: RecordType.HardState, hardState: hs })
  const bytes = w.finish()
  const fh = await fsp.open(join(dir, name), 'wx')
  try {
    await writeFully(fh, [bytes], bytes.length, 0)
    await fh.datasync()
    await fsyncDir(dir)
  } catch (e) {
    await fh.close().catch(() => {})
    throw e
  }
  return { fh, size: bytes.length }
}

async function writeFully(
  fh: FileHandle,
  bufs: Uint8Array[],
  total: number,
  position: number,
): Promise<void> {
  const { bytesWritten } = await fh.writev(bufs, position)
  if (bytesWritten === total) return
  // Short write (rare): finish from a contiguous copy.
  const all = Buffer.concat(bufs)
  let off = bytesWritten
  while (off < total) {
    const r = await fh.write(all, off, total - off, position + off)
    if (r.bytesWritten === 0) throw new Error('write made no progress')
    off += r.bytesWritten
  }
}

async function truncateFile(path: string, length: number): Promise<void> {
  const fh = await fsp.open(path, 'r+')
  try {
    await fh.truncate(length)
    await fh.datasync()
  } finally {
    await fh.close()
  }
}

/**
 * Replay one segment. Returns where to cut a torn tail, or throws StorageError('corrupt') for
 * damage that cannot be a torn write: anything in a non-last segment, or a bad record in the
 * last segment that is followed by a good one.
 */
function scanSegment(
  buf: Uint8Array,
  seg: Segment,
  isLast: boolean,
  maxRecord: number,
  limits: DecodeLimits,
  replay: LogReplay,
): { offset: number; reason: string } | undefined {
  const corrupt = (at: number, why: string) =>
    new StorageError(
      'corrupt',
      `WAL segment ${seg.name} at byte ${at}: ${why} (not a torn tail; refusing to start)`,
    )
  if (buf.length < SEGMENT_MAGIC.length) {
    if (isLast) return { offset: 0, reason: 'segment header truncated' }
    throw corrupt(0, 'segment header truncated')
  }
  for (let i = 0; i < SEGMENT_MAGIC.length; i++) {
    if (buf[i] !== SEGMENT_MAGIC[i]) throw corrupt(0, 'bad segment header')
  }
  let pos = SEGMENT_MAGIC.length
  for (;;) {
    const f = readFrame(buf, pos, maxRecord)
    if (f.kind === 'end') return undefined
    if (f.kind === 'ok') {
      let rec: ReturnType<typeof decodeRecordBody>
      try {
        rec = decodeRecordBody(f.body, limits)
      } catch (e) {
        throw corrupt(pos, `undecodable record with a valid checksum: ${(e as Error).message}`)
      }
      replay.apply(rec)
      if (rec.type === RecordType.Entry) seg.maxIndex = Math.max(seg.maxIndex, rec.entry.index)
      pos = f.next
      continue
    }
    if (!isLast) throw corrupt(pos, f.reason)
    if (f.kind === 'corrupt' && f.next !== undefined && readFrame(buf, f.next, maxRecord).kind === 'ok') {
      throw corrupt(pos, `${f.reason}, followed by a valid record`)
    }
    return { offset: pos, reason: f.reason }
  }
}
