// The consensus -> OrderedLog adapter on a real single-voter Replica (WAL in a temp dir):
// leadership is reported, vmsync records come back through 'apply' with their kind and index,
// consensus-internal entries (the leader's no-op) do not.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EntryType } from '@plover/consensus'
import t from 'tap'
import { ConsensusOrderedLog } from '../../src/log/consensus-log.js'
import { type LogRecord, LogRecordKind } from '../../src/log/ordered-log.js'
import { openSingleVoter, untilLeader } from './fixtures/single-voter.js'

t.test("vmsync's record kinds are consensus entry types", async (t) => {
  t.equal(LogRecordKind.Input as number, EntryType.Normal as number)
  t.equal(LogRecordKind.SyncMarker as number, EntryType.SyncMarker as number)
  t.equal(LogRecordKind.SyncDone as number, EntryType.SyncDone as number)
  t.equal(LogRecordKind.Unprotect as number, EntryType.Unprotect as number)
})

t.test('records round-trip with kind and index; leadership follows the role', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'plover-log-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const replica = await openSingleVoter(dir)
  const log = new ConsensusOrderedLog(replica)
  const applied: LogRecord[] = []
  log.on('apply', (r) => applied.push(r))
  const leadership: boolean[] = []
  log.on('leadership', (l) => leadership.push(l))
  await untilLeader(log)
  t.ok(log.isLeader, 'a single voter leads')

  const i1 = await log.propose(LogRecordKind.Input, Uint8Array.of(1, 2, 3))
  const i2 = await log.propose(LogRecordKind.SyncMarker, Uint8Array.of(9))
  const i3 = await log.propose(LogRecordKind.SyncDone, Uint8Array.of(8))
  const i4 = await log.propose(LogRecordKind.Unprotect, new Uint8Array(0))
  t.ok(
    i1 > 1 && i2 === i1 + 1 && i3 === i2 + 1 && i4 === i3 + 1,
    `consecutive indices after the no-op: ${i1} ${i2} ${i3} ${i4}`,
  )
  t.same(
    applied.map((r) => [r.index, r.kind, [...r.data]]),
    [
      [i1, LogRecordKind.Input, [1, 2, 3]],
      [i2, LogRecordKind.SyncMarker, [9]],
      [i3, LogRecordKind.SyncDone, [8]],
      [i4, LogRecordKind.Unprotect, []],
    ],
    'only vmsync records, in order, with their kind',
  )

  await replica.close()
  await t.rejects(log.propose(LogRecordKind.Input, Uint8Array.of(1)), 'a closed replica refuses proposals')
  log.detach()
  t.notOk(log.isLeader, 'a detached adapter never claims leadership')
  t.same(
    leadership.filter((l) => l),
    [true],
    'leadership reported once',
  )
})
