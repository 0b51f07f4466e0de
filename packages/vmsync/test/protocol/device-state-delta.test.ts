// Device-state deltas: exact round trips for edits, growth and shrinkage; garbage from a peer is a
// ProtocolViolationError, never a RangeError or a huge allocation.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { applyDeviceStateDelta, encodeDeviceStateDelta } from '../../src/protocol/device-state-delta.js'
import { ProtocolViolationError } from '../../src/protocol/errors.js'
import { rng } from './fixtures/harness.js'

t.test('round trips: scattered edits, growth, shrinkage, empty base', async (t) => {
  const rand = rng(5)
  const base = randomBytes(585_443)
  const edited = Buffer.from(base)
  for (let i = 0; i < 40; i++) edited[Math.floor(rand() * edited.length)] ^= 0xff
  const delta = encodeDeviceStateDelta(base, edited)
  t.ok(delta.length <= 40 * 68 + 12, `40 edits cost ${delta.length} bytes, not ${edited.length}`)
  t.ok(Buffer.from(applyDeviceStateDelta(base, delta)).equals(edited), 'edits')
  const same = encodeDeviceStateDelta(base, base)
  t.equal(same.length, 12, 'no change: header only')
  t.ok(Buffer.from(applyDeviceStateDelta(base, same)).equals(base))
  for (const next of [
    Buffer.concat([base, randomBytes(1000)]),
    base.subarray(0, 1000),
    base.subarray(0, 1001),
    Buffer.alloc(0),
  ]) {
    const d = encodeDeviceStateDelta(base, next)
    t.ok(Buffer.from(applyDeviceStateDelta(base, d)).equals(next), `length ${base.length} -> ${next.length}`)
  }
  const fromNothing = encodeDeviceStateDelta(new Uint8Array(0), base)
  t.ok(Buffer.from(applyDeviceStateDelta(new Uint8Array(0), fromNothing)).equals(base), 'from an empty base')
})

t.test('malformed deltas are rejected with ProtocolViolationError', async (t) => {
  const base = randomBytes(4096)
  const next = Buffer.from(base)
  next[100] ^= 1
  next[3000] ^= 1
  const good = Buffer.from(encodeDeviceStateDelta(base, next))
  const cases: Array<[string, Buffer]> = [
    ['short header', good.subarray(0, 8)],
    ['truncated data', good.subarray(0, good.length - 1)],
    ['trailing bytes', Buffer.concat([good, Buffer.from([0])])],
  ]
  const huge = Buffer.from(good)
  huge.writeUInt32LE(0xffffffff, 0)
  cases.push(['oversized total', huge])
  const zeroChunk = Buffer.from(good)
  zeroChunk.writeUInt32LE(0, 4)
  cases.push(['zero chunk size', zeroChunk])
  const disorder = Buffer.from(good)
  const i0 = disorder.readUInt32LE(12)
  disorder.writeUInt32LE(disorder.readUInt32LE(16), 12)
  disorder.writeUInt32LE(i0, 16)
  cases.push(['indices out of order', disorder])
  const grow = Buffer.from(good)
  grow.writeUInt32LE(8192, 0) // claims growth without the chunks beyond the base
  cases.push(['gap after the base', grow])
  for (const [name, bad] of cases) {
    t.throws(() => applyDeviceStateDelta(base, bad), ProtocolViolationError, name)
  }
  let other = 0
  for (let i = 0; i < 2000; i++) {
    const junk = randomBytes(12 + Math.floor(Math.random() * 64))
    if (i % 2 === 0) junk.writeUInt32LE(junk.readUInt32LE(0) % 10_000, 0)
    try {
      applyDeviceStateDelta(base, junk)
    } catch (err) {
      if (!(err instanceof ProtocolViolationError)) other++
    }
  }
  t.equal(other, 0, '2000 random deltas: only ProtocolViolationError')
})
