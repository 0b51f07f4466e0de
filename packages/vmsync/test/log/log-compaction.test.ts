// Log compaction at sync cuts, on a real single-voter Replica (WAL with small segments in a temp
// dir): the log is cut at the marker of the last SyncDone once enough records lie before it,
// covered WAL segments are deleted, records after the marker survive, and a restart from the
// compacted WAL reports the cut as a 'gap' before replaying what is left. The decision rules
// (threshold, waiting for 'applied', retry after a failure) also run against a fake log.
import { readdirSync, rmSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EventEmitter } from 'eventemitter3'
import t from 'tap'
import { ConsensusOrderedLog } from '../../src/log/consensus-log.js'
import {
  type CompactableLog,
  decodeCompactionPoint,
  encodeCompactionPoint,
  LogCompaction,
} from '../../src/log/log-compaction.js'
import { type LogRecord, LogRecordKind, type OrderedLogEvents } from '../../src/log/ordered-log.js'
import { encodeSyncDone, encodeSyncMarker } from '../../src/protocol/marker.js'
import { openSingleVoter, untilLeader } from './fixtures/single-voter.js'

const marker = (epoch: number) => encodeSyncMarker({ epoch, outputCount: 0 })
const done = (epoch: number) => encodeSyncDone({ epoch })
// Small segments, so compaction visibly deletes files.
const SMALL_SEGMENTS = { wal: { segmentBytes: 4096 } }

t.test('a real replica compacts at the last sync cut and restarts from it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'plover-compact-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  let replica = await openSingleVoter(dir, SMALL_SEGMENTS)
  let log = new ConsensusOrderedLog(replica)
  t.teardown(() => replica.close())
  const compaction = new LogCompaction(log, log, { minEntries: 40 })
  const compacted: number[][] = []
  compaction.on('compacted', (index, epoch) => compacted.push([index, epoch]))
  const errors: Error[] = []
  compaction.on('error', (e) => errors.push(e))
  await untilLeader(log)
  const segments = () => readdirSync(dir).filter((n) => n.endsWith('.wal')).length
  const payload = new Uint8Array(400).fill(1)

  // Epoch 1: too few records before its marker to be worth a compaction.
  for (let i = 0; i < 5; i++) await log.propose(LogRecordKind.Input, payload)
  const m1 = await log.propose(LogRecordKind.SyncMarker, marker(1))
  await log.propose(LogRecordKind.SyncDone, done(1))
  await new Promise((r) => setTimeout(r, 20))
  t.same(compacted, [], `no compaction for ${m1} records`)

  // Epoch 2: the marker is followed by inputs of the next epoch before its SyncDone commits.
  for (let i = 0; i < 60; i++) await log.propose(LogRecordKind.Input, payload)
  const m2 = await log.propose(LogRecordKind.SyncMarker, marker(2))
  const after: number[] = []
  for (let i = 0; i < 3; i++) after.push(await log.propose(LogRecordKind.Input, Uint8Array.of(i)))
  const segmentsBefore = segments()
  const compactedOnce = new Promise((r) => compaction.once('compacted', r))
  const d2 = await log.propose(LogRecordKind.SyncDone, done(2))
  await compactedOnce
  t.same(compacted, [[m2, 2]], 'compacted at the marker of the SyncDone, not at the SyncDone')
  t.same(errors, [])
  const st = replica.status()
  t.equal(st.firstIndex, m2 + 1, 'the log starts right after the marker')
  t.equal(st.lastIndex, d2, 'records after the marker are kept')
  t.ok(segmentsBefore > 1, `the WAL had ${segmentsBefore} segments`)
  t.ok(segments() < segmentsBefore, `covered segments deleted: ${segmentsBefore} -> ${segments()}`)
  const snaps = readdirSync(dir).filter((n) => n.endsWith('.snap'))
  t.equal(snaps.length, 1, 'one snapshot file')

  // Restart: the cut comes back as a gap, then the records after it are replayed.
  await replica.close()
  log.detach()
  compaction.detach()
  replica = await openSingleVoter(dir, SMALL_SEGMENTS)
  log = new ConsensusOrderedLog(replica)
  const seen: string[] = []
  log.on('gap', (through) => seen.push(`gap ${through}`))
  log.on('apply', (r: LogRecord) => seen.push(`apply ${r.index}`))
  await untilLeader(log)
  const d3 = await log.propose(LogRecordKind.SyncDone, done(3))
  t.same(
    seen,
    [`gap ${m2}`, ...after.map((i) => `apply ${i}`), `apply ${d2}`, `apply ${d3}`],
    'the gap first, then only the records after the cut',
  )
  t.equal(replica.status().firstIndex, m2 + 1)
})

t.test('the compaction point round-trips and refuses garbage', async (t) => {
  t.same(decodeCompactionPoint(encodeCompactionPoint({ epoch: 7, markerIndex: 1234 })), {
    epoch: 7,
    markerIndex: 1234,
  })
  t.throws(() => decodeCompactionPoint(Uint8Array.of(9, 1, 2)), { name: 'MalformedMessageError' })
  t.throws(() => decodeCompactionPoint(new Uint8Array(0)), { name: 'MalformedMessageError' })
})

/** A log whose compaction the test controls (extra fast path for the decision rules). */
class FakeLog extends EventEmitter<OrderedLogEvents> implements CompactableLog {
  appliedIndex = 0
  compactedThrough = 0
  calls: number[] = []
  failNext = false
  /** Like a Replica: 'apply' fires before the record counts as applied. */
  apply(index: number, kind: LogRecordKind, data: Uint8Array): void {
    this.emit('apply', { index, kind, data })
    this.appliedIndex = index
  }
  async compact(index: number): Promise<void> {
    this.calls.push(index)
    if (this.failNext) {
      this.failNext = false
      throw new Error('disk full')
    }
    this.compactedThrough = index
  }
}

const tick = () => new Promise((r) => setImmediate(r))

t.test('decision rules: threshold, applied index, failure and retry, snapshot from the leader', async (t) => {
  const log = new FakeLog()
  const c = new LogCompaction(log, log, { minEntries: 10 })
  const errors: string[] = []
  c.on('error', (e) => errors.push(e.message))

  log.apply(20, LogRecordKind.SyncMarker, marker(1))
  // The SyncDone arrives while the log still counts the marker as not applied (same batch).
  log.appliedIndex = 5
  log.emit('apply', { index: 22, kind: LogRecordKind.SyncDone, data: done(1) })
  await tick()
  t.same(log.calls, [], 'not beyond the applied index')
  log.apply(23, LogRecordKind.Input, Uint8Array.of(1))
  await tick()
  t.same(log.calls, [], 'the next record is observed before it counts as applied, too')
  log.apply(24, LogRecordKind.Input, Uint8Array.of(1))
  await tick()
  t.same(log.calls, [20], 'retried once the marker counts as applied')

  log.failNext = true
  log.apply(40, LogRecordKind.SyncMarker, marker(2))
  log.apply(41, LogRecordKind.SyncDone, done(2))
  await tick()
  t.same(errors, ['disk full'], 'a failure is reported')
  t.equal(log.compactedThrough, 20)
  log.apply(45, LogRecordKind.SyncMarker, marker(3))
  log.apply(46, LogRecordKind.SyncDone, done(3))
  await tick()
  t.same(log.calls, [20, 40, 45], 'the next SyncDone tries again, at its own cut')

  // A snapshot from the leader moved the log past the next cut: nothing to do.
  log.compactedThrough = 100
  log.apply(60, LogRecordKind.SyncMarker, marker(4))
  log.apply(101, LogRecordKind.SyncDone, done(4))
  // A SyncDone whose marker this replica never saw (compacted before a restart) is no cut.
  log.apply(120, LogRecordKind.SyncDone, done(9))
  // An undecodable marker is no cut either.
  log.apply(130, LogRecordKind.SyncMarker, Uint8Array.of(99))
  log.apply(131, LogRecordKind.SyncDone, done(10))
  await tick()
  t.same(log.calls, [20, 40, 45], 'no compaction behind the log start or without a marker')
  t.equal(c.compactions, 2)
  t.throws(() => new LogCompaction(log, log, { minEntries: 0 }), RangeError)
})
