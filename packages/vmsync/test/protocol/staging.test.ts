// Backup staging: nothing is accepted out of order, outside the sync's page set, or with a
// count/checksum that does not match what the primary says it sent.
import t from 'tap'
import { TransferChecksum } from '../../src/protocol/checksum.js'
import { ProtocolViolationError } from '../../src/protocol/errors.js'
import { type PagesMsg, SyncMessageType, type TransferEndMsg } from '../../src/protocol/messages.js'
import { PageStaging } from '../../src/protocol/staging.js'

const PS = 4096
function batch(seq: number, indices: number[], fill: number): PagesMsg {
  const data = new Uint8Array(indices.length * PS).fill(fill)
  return { type: SyncMessageType.Pages, epoch: 1, seq, indices: Uint32Array.from(indices), data }
}
function end(batches: PagesMsg[], dev = new Uint8Array([1])): TransferEndMsg {
  const c = new TransferChecksum()
  let n = 0
  for (const b of batches) {
    c.addPages(b.indices, b.data, PS)
    n += b.indices.length
  }
  c.addDeviceState(dev)
  return {
    type: SyncMessageType.TransferEnd,
    epoch: 1,
    pageCount: n,
    batchCount: batches.length,
    syncId: 1,
    checksum: c.digest(),
    deviceStateBase: 0,
    deviceState: dev,
  }
}

t.test('complete transfer verifies and returns the staged pages', async (t) => {
  const s = new PageStaging(PS, 64)
  s.begin(Uint32Array.from([1, 2, 5, 9]))
  const bs = [batch(0, [1, 2], 7), batch(1, [9], 8)]
  for (const b of bs) s.add(b)
  const out = s.finish(end(bs))
  t.same(Array.from(out.indices), [1, 2, 9])
  t.equal(out.data[0], 7)
  t.equal(out.data[2 * PS], 8)
})

t.test('violations', async (t) => {
  const s = new PageStaging(PS, 64)
  s.begin(Uint32Array.from([1, 2, 5]))
  t.throws(() => s.add(batch(1, [1], 0)), ProtocolViolationError, 'batch gap')
  t.throws(() => s.add(batch(0, [3], 0)), /not in this sync's page set/)
  s.begin(null)
  t.throws(() => s.add(batch(0, [64], 0)), /out of range/)
  s.add(batch(0, [4], 0))
  t.throws(() => s.add(batch(1, [4], 0)), /sent twice/)
  t.throws(() => s.add({ ...batch(1, [6], 0), data: new Uint8Array(10) }), /carries 10 bytes/)

  s.begin(null)
  const bs = [batch(0, [1], 1), batch(1, [2], 2)]
  s.add(bs[0])
  t.throws(() => s.finish(end(bs)), /incomplete transfer/, 'missing batch')
  s.begin(null)
  for (const b of bs) s.add(b)
  const tampered = end([bs[0], batch(1, [2], 3)])
  t.throws(() => s.finish(tampered), /checksum mismatch/)
  s.begin(null)
  for (const b of bs) s.add(b)
  const swappedDevice = { ...end(bs, new Uint8Array([1])), deviceState: new Uint8Array([9]) }
  t.throws(() => s.finish(swappedDevice), /checksum mismatch/, 'device state is covered by the checksum')
  s.begin(null)
  for (const b of bs) s.add(b)
  t.equal(s.finish(end(bs)).indices.length, 2, 'and the untampered transfer verifies')
})
