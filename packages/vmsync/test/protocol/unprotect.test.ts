// Losing the backup while outputs are held: they go out only once an Unprotect record the primary
// proposed afterwards commits, i.e. only while it provably still leads. A primary that no longer
// leads (cut off, deposed) never releases them, and a backup that syncs before the commit keeps
// them protected.
import t, { type Test } from 'tap'
import { LogRecordKind } from '../../src/log/ordered-log.js'
import { makePair, syncBoth, tcpPair, waitEvent } from './fixtures/harness.js'

/** A trusted pair after one sync over TCP: the primary's guard is protected and holds `frames`. */
async function protectedPair(t: Test, frames: string[]) {
  const pair = await makePair({ trusted: true, pageCount: 64 })
  t.teardown(() => pair.close())
  const link = await tcpPair()
  t.teardown(() => link.close())
  pair.primary.attachLink(link.a)
  pair.backup.attachLink(link.b)
  await syncBoth(pair, 1)
  t.ok(pair.guard.isProtected, 'protected after the sync')
  const released: string[] = []
  pair.guard.on('release', (f) => released.push(Buffer.from(f).toString()))
  for (const f of frames) pair.guard.push(Buffer.from(f))
  t.equal(pair.guard.stats().heldFrames, frames.length, 'outputs held')
  const unprotectRecords = () => pair.cluster.records.filter((r) => r.kind === LogRecordKind.Unprotect).length
  return { pair, link, released, unprotectRecords }
}

t.test('held outputs go out after the Unprotect record commits, not when the link drops', async (t) => {
  const { pair, link, released, unprotectRecords } = await protectedPair(t, ['a', 'b'])
  const unprotected = waitEvent<[string]>(pair.guard, 'unprotected')
  let recordsAtRelease = -1
  pair.guard.once('release', () => {
    recordsAtRelease = unprotectRecords()
  })
  await link.close()
  t.same(released, [], 'nothing released as the link dropped')
  const [reason] = await unprotected
  t.match(reason, /backup link down/, `unprotected: ${reason}`)
  t.same(released, ['a', 'b'], 'then released in order')
  t.equal(recordsAtRelease, 1, 'the Unprotect record was in the log before the first release')
  pair.guard.push(Buffer.from('c'))
  t.same(released, ['a', 'b', 'c'], 'later outputs pass through (no backup)')
})

t.test('a primary that no longer leads never releases its held outputs when the link drops', async (t) => {
  const { pair, link, released, unprotectRecords } = await protectedPair(t, ['a', 'b'])
  // Another member leads now (this one was cut off or deposed; nothing demoted it yet).
  pair.cluster.setLeader(pair.cluster.join())
  await link.close()
  await new Promise((r) => setTimeout(r, 300))
  t.same(released, [], 'nothing released')
  t.equal(pair.guard.stats().heldFrames, 2, 'still held (a step-down drops them)')
  t.equal(unprotectRecords(), 0, 'its Unprotect proposal was refused')
})

t.test('a backup that syncs before the Unprotect commits keeps the outputs protected', async (t) => {
  const { pair, link, released, unprotectRecords } = await protectedPair(t, ['a'])
  // Hold the Unprotect proposal until the next sync has completed.
  let commitUnprotect!: () => void
  const gate = new Promise<void>((r) => {
    commitUnprotect = r
  })
  const append = pair.cluster.append.bind(pair.cluster)
  pair.cluster.append = (from, kind, data) =>
    kind === LogRecordKind.Unprotect ? gate.then(() => append(from, kind, data)) : append(from, kind, data)
  const events: string[] = []
  pair.guard.on('unprotected', () => events.push('unprotected'))
  await link.close()

  const again = await tcpPair()
  t.teardown(() => again.close())
  await pair.pvm.resume()
  await pair.bvm.resume()
  pair.primary.attachLink(again.a)
  pair.backup.attachLink(again.b)
  const { p } = await syncBoth(pair, 2)
  t.ok(p, 'the backup synced again')
  // What VmReplica's input delivery does when the SyncDone record applies.
  while (!pair.cluster.records.some((r) => r.kind === LogRecordKind.SyncDone))
    await new Promise((r) => setImmediate(r))
  pair.primary.onSyncDone({ epoch: 2 })
  t.same(released, ['a'], "the held output went out with the sync's SyncDone")

  commitUnprotect()
  await new Promise((r) => setTimeout(r, 100))
  t.equal(unprotectRecords(), 1, 'the late Unprotect record committed')
  t.same(events, [], 'and did not unprotect the outputs')
  t.ok(pair.guard.isProtected, 'still protected')
  pair.guard.push(Buffer.from('d'))
  t.same(released, ['a'], 'new outputs are held for the next sync')
})
