import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { MemberRole } from '../../src/core/types.js'
import { StorageError } from '../../src/wal/errors.js'
import { Wal } from '../../src/wal/wal.js'
import { brief, entries, tempDir } from './helpers.js'

const membership = { members: [1, 2, 3].map((id) => ({ id, role: MemberRole.Voter })) }
const segs = async (dir: string) => (await fsp.readdir(dir)).filter((n) => n.endsWith('.wal')).sort()

t.test('entries and hard state survive reopen', async (t) => {
  const dir = tempDir(t)
  const wal = await Wal.open(dir)
  t.same(wal.recovered.entries, [])
  t.same(wal.recovered.hardState, { term: 0, vote: 0, commit: 0 })
  await wal.save({ hardState: { term: 1, vote: 2, commit: 0 }, entries: entries(1, 5, 1) })
  await wal.save({ hardState: { term: 1, vote: 2, commit: 3 } })
  await wal.close()
  const again = await Wal.open(dir)
  t.equal(brief(again.recovered.entries), '1/1 2/1 3/1 4/1 5/1')
  t.same(again.recovered.entries[2].data, new Uint8Array(16).fill(3))
  t.same(again.recovered.hardState, { term: 1, vote: 2, commit: 3 })
  t.equal(again.recovered.truncatedTail, undefined)
  await again.close()
})

t.test('an append overwriting a suffix replaces it (conflict truncation)', async (t) => {
  const dir = tempDir(t)
  const wal = await Wal.open(dir)
  await wal.save({ entries: entries(1, 10, 1) })
  await wal.save({ entries: entries(6, 8, 2) })
  await wal.close()
  const again = await Wal.open(dir)
  t.equal(brief(again.recovered.entries), '1/1 2/1 3/1 4/1 5/1 6/2 7/2 8/2')
  await again.close()
})

t.test('group commit: saves queued during an fsync share the next one', async (t) => {
  const dir = tempDir(t)
  const wal = await Wal.open(dir)
  const probe = await fsp.open(join(dir, 'probe'), 'w')
  const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> }
  await probe.close()
  const orig = proto.datasync
  let syncs = 0
  proto.datasync = function (this: unknown) {
    syncs++
    return orig.call(this)
  }
  t.teardown(() => {
    proto.datasync = orig
  })
  const saves = []
  for (let i = 1; i <= 200; i++) saves.push(wal.save({ entries: entries(i, i, 1) }))
  await Promise.all(saves)
  proto.datasync = orig
  // First save starts an fsync alone; the other 199 were queued behind it and share one.
  t.equal(syncs, 2, `${syncs} fdatasyncs for 200 saves`)
  await wal.close()
  const again = await Wal.open(dir)
  t.equal(again.recovered.entries.length, 200)
  await again.close()
})

t.test('segments rotate; a snapshot drops the segments it covers', async (t) => {
  const dir = tempDir(t)
  const wal = await Wal.open(dir, { segmentBytes: 4096 })
  for (let i = 1; i <= 100; i += 10) {
    await wal.save({ hardState: { term: 1, vote: 1, commit: i }, entries: entries(i, i + 9, 1, 200) })
  }
  const before = await segs(dir)
  t.ok(before.length >= 4, `${before.length} segments`)
  await wal.compact({ meta: { index: 60, term: 1, membership }, data: Uint8Array.from([6, 0]) })
  const after = await segs(dir)
  t.ok(after.length < before.length, `dropped to ${after.length} segments`)
  t.equal(after[after.length - 1], before[before.length - 1], 'current segment kept')
  await wal.save({ entries: entries(101, 101, 2) })
  await wal.close()

  const again = await Wal.open(dir, { segmentBytes: 4096 })
  const r = again.recovered
  t.equal(r.snapshot?.meta.index, 60)
  t.same(r.snapshot?.data, Uint8Array.from([6, 0]))
  t.same(r.snapshot?.meta.membership, membership)
  t.equal(r.entries[0].index, 61)
  t.equal(r.entries[r.entries.length - 1].index, 101)
  t.equal(r.entries.length, 41)
  t.same(
    r.hardState,
    { term: 1, vote: 1, commit: 91 },
    'hard state survives dropping the segment that held it',
  )
  await again.close()
})

t.test('an installed snapshot voids the old log; later entries follow it', async (t) => {
  const dir = tempDir(t)
  const wal = await Wal.open(dir)
  await wal.save({ entries: entries(1, 30, 1) })
  await wal.save({
    snapshot: { meta: { index: 20, term: 3, membership }, data: Uint8Array.from([20]) },
    entries: entries(21, 22, 3),
    hardState: { term: 3, vote: 0, commit: 20 },
  })
  await wal.close()
  const again = await Wal.open(dir)
  t.equal(again.recovered.snapshot?.meta.index, 20)
  t.equal(brief(again.recovered.entries), '21/3 22/3', 'stale 21..30 of term 1 gone')
  await again.close()
})

t.test('torn tail: a truncated last record is cut off and appends continue', async (t) => {
  const dir = tempDir(t)
  const wal = await Wal.open(dir)
  await wal.save({ entries: entries(1, 5, 1, 100) })
  await wal.close()
  const [seg] = await segs(dir)
  const path = join(dir, seg)
  const size = (await fsp.stat(path)).size
  await fsp.truncate(path, size - 30)
  const again = await Wal.open(dir)
  t.equal(brief(again.recovered.entries), '1/1 2/1 3/1 4/1')
  t.match(again.recovered.truncatedTail, { segment: seg, reason: /truncated/ })
  await again.save({ entries: entries(5, 6, 2) })
  await again.close()
  const third = await Wal.open(dir)
  t.equal(brief(third.recovered.entries), '1/1 2/1 3/1 4/1 5/2 6/2')
  t.equal(third.recovered.truncatedTail, undefined)
  await third.close()
})

t.test('torn tail: a corrupt last record (garbage / zeroes) is cut off', async (t) => {
  for (const fill of ['flip', 'zeros'] as const) {
    const dir = tempDir(t)
    const wal = await Wal.open(dir)
    await wal.save({ entries: entries(1, 3, 1, 100) })
    await wal.save({ entries: entries(4, 4, 1, 100) })
    await wal.close()
    const path = join(dir, (await segs(dir))[0])
    const buf = await fsp.readFile(path)
    if (fill === 'flip') buf[buf.length - 10] ^= 0x40
    else buf.fill(0, buf.length - 60)
    await fsp.writeFile(path, buf)
    const again = await Wal.open(dir)
    t.equal(brief(again.recovered.entries), '1/1 2/1 3/1', fill)
    t.ok(again.recovered.truncatedTail, fill)
    await again.close()
  }
})

t.test('corruption in the middle of the log is refused, not truncated', async (t) => {
  const dir = tempDir(t)
  const wal = await Wal.open(dir)
  await wal.save({ entries: entries(1, 6, 1, 100) })
  await wal.close()
  const path = join(dir, (await segs(dir))[0])
  const buf = await fsp.readFile(path)
  buf[200] ^= 0x01 // inside entry 2 of 6
  await fsp.writeFile(path, buf)
  const err = await Wal.open(dir).then(
    () => undefined,
    (e: unknown) => e,
  )
  t.ok(err instanceof StorageError)
  t.equal((err as StorageError).kind, 'corrupt')
  t.match((err as StorageError).message, /followed by a valid record/)
  t.equal((await fsp.readFile(path)).length, buf.length, 'file left untouched for inspection')
})

t.test('damage in a non-last segment is refused', async (t) => {
  const dir = tempDir(t)
  const wal = await Wal.open(dir, { segmentBytes: 1024 })
  for (let i = 1; i <= 30; i += 5) await wal.save({ entries: entries(i, i + 4, 1, 100) })
  await wal.close()
  const all = await segs(dir)
  t.ok(all.length >= 3)
  const path = join(dir, all[0])
  await fsp.truncate(path, (await fsp.stat(path)).size - 5)
  await t.rejects(Wal.open(dir, { segmentBytes: 1024 }), { name: 'StorageError', kind: 'corrupt' })
})

t.test('a corrupt snapshot file is refused', async (t) => {
  const dir = tempDir(t)
  const wal = await Wal.open(dir)
  await wal.save({ entries: entries(1, 5, 1) })
  await wal.compact({ meta: { index: 3, term: 1, membership }, data: new Uint8Array(50).fill(9) })
  await wal.close()
  const snap = (await fsp.readdir(dir)).find((n) => n.endsWith('.snap'))!
  const buf = await fsp.readFile(join(dir, snap))
  buf[buf.length - 1] ^= 0xff
  await fsp.writeFile(join(dir, snap), buf)
  await t.rejects(Wal.open(dir), { name: 'StorageError', kind: 'corrupt', message: /checksum/ })
})

t.test('inline io: same durability contract, batches of one turn share a write', async (t) => {
  const dir = tempDir(t)
  const wal = await Wal.open(dir, { io: 'inline', segmentBytes: 4096 })
  const saves = []
  for (let i = 1; i <= 100; i++)
    saves.push(wal.save({ entries: entries(i, i, 1, 100), hardState: { term: 1, vote: 1, commit: i } }))
  await Promise.all(saves)
  await wal.save({ entries: entries(50, 60, 2) })
  await wal.close()
  const again = await Wal.open(dir, { io: 'inline' })
  t.equal(again.recovered.entries.length, 60)
  t.equal(again.recovered.entries[59].term, 2)
  t.same(again.recovered.hardState, { term: 1, vote: 1, commit: 100 })
  await again.close()
})

t.test('sync:false records are written in order without an fsync of their own', async (t) => {
  const dir = tempDir(t)
  const wal = await Wal.open(dir)
  const probe = await fsp.open(join(dir, 'probe'), 'w')
  const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> }
  await probe.close()
  const orig = proto.datasync
  let syncs = 0
  proto.datasync = function (this: unknown) {
    syncs++
    return orig.call(this)
  }
  t.teardown(() => {
    proto.datasync = orig
  })
  await wal.save({ entries: entries(1, 3, 1) })
  t.equal(syncs, 1)
  await wal.save({ hardState: { term: 1, vote: 1, commit: 3 }, sync: false })
  t.equal(syncs, 1, 'commit-only hard state: no fsync')
  await wal.save({ entries: entries(4, 4, 1) })
  t.equal(syncs, 2)
  proto.datasync = orig
  await wal.close()
  const again = await Wal.open(dir)
  t.same(again.recovered.hardState, { term: 1, vote: 1, commit: 3 })
  t.equal(again.recovered.entries.length, 4)
  await again.close()
})
