import t from 'tap'
import { MemberRole } from '../../src/core/types.js'
import { RecordType } from '../../src/wal/record.js'
import { LogReplay } from '../../src/wal/replay.js'
import { brief, entries } from './helpers.js'

const membership = { members: [{ id: 1, role: MemberRole.Voter }] }
const snap = (index: number, term: number) => ({ meta: { index, term, membership }, data: new Uint8Array() })

t.test('a log whose entry at the snapshot index has another term is discarded', async (t) => {
  const r = new LogReplay()
  for (const entry of entries(1, 10, 1)) r.apply({ type: RecordType.Entry, entry })
  t.equal(brief(r.finish(snap(5, 2))), '', 'diverged at 5: nothing after it is trusted')
  const r2 = new LogReplay()
  for (const entry of entries(1, 10, 2)) r2.apply({ type: RecordType.Entry, entry })
  t.equal(brief(r2.finish(snap(5, 2))), '6/2 7/2 8/2 9/2 10/2', 'matches at 5: suffix kept')
})

t.test('a gap in the log is corruption', async (t) => {
  const r = new LogReplay()
  r.apply({ type: RecordType.Entry, entry: entries(1, 1, 1)[0] })
  t.throws(() => r.apply({ type: RecordType.Entry, entry: entries(3, 3, 1)[0] }), {
    name: 'StorageError',
    message: /gap|snapshot/,
  })
  const r2 = new LogReplay()
  for (const entry of entries(8, 10, 1)) r2.apply({ type: RecordType.Entry, entry })
  t.throws(
    () => r2.finish(snap(5, 1)),
    { name: 'StorageError', message: /gap|snapshot/ },
    'log must continue right after the snapshot',
  )
})

t.test('a snapshot install newer than the snapshot file is corruption', async (t) => {
  const r = new LogReplay()
  r.apply({ type: RecordType.SnapshotInstall, index: 9, term: 1 })
  t.throws(() => r.finish(snap(4, 1)), { name: 'StorageError', message: /gap|snapshot/ })
})
