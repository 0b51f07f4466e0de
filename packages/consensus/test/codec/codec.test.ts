import t from 'tap'
import { crc32c } from '../../src/codec/crc32c.js'
import { DecodeError } from '../../src/codec/errors.js'
import { DEFAULT_LIMITS } from '../../src/codec/limits.js'
import { decodeMessage, encodeMessage } from '../../src/codec/message.js'
import { ByteReader } from '../../src/codec/reader.js'
import { ByteWriter } from '../../src/codec/writer.js'
import { MessageType } from '../../src/core/types.js'
import { genMessage } from './gen.js'
import { prng } from './prng.js'

t.test('crc32c matches the standard check values', async (t) => {
  // RFC 3720 / iSCSI test vectors.
  t.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283)
  t.equal(crc32c(new Uint8Array(32)), 0x8a9136aa)
  t.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43)
  const inc = Uint8Array.from({ length: 32 }, (_, i) => i)
  t.equal(crc32c(inc), 0x46dd794e)
  // Incremental = one-shot, across the 8-byte fast path boundary.
  const rnd = prng(7)
  const b = Uint8Array.from({ length: 1000 }, () => Math.floor(rnd() * 256))
  t.equal(crc32c(b.subarray(13), crc32c(b.subarray(0, 13))), crc32c(b))
})

t.test('varints round-trip up to 2^53-1 and reject overlong / non-minimal forms', async (t) => {
  for (const v of [0, 1, 127, 128, 16383, 16384, 2 ** 31, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]) {
    const w = new ByteWriter(1)
    w.uvarint(v)
    const r = new ByteReader(w.finish())
    t.equal(r.uvarint(), v)
    t.equal(r.remaining, 0)
  }
  t.throws(
    () => new ByteReader(Uint8Array.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 1])).uvarint(),
    DecodeError,
  )
  t.throws(() => new ByteReader(Uint8Array.from([0x80, 0x00])).uvarint(), DecodeError)
  t.throws(
    () => new ByteReader(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])).uvarint(),
    DecodeError,
  )
  t.throws(() => new ByteReader(Uint8Array.from([0x80])).uvarint(), DecodeError)
})

t.test('messages round-trip (seeded random)', async (t) => {
  const rnd = prng(42)
  for (let i = 0; i < 2000; i++) {
    const m = genMessage(rnd)
    const back = decodeMessage(encodeMessage(m))
    t.same(back, m, `case ${i}`, { diagnostic: false })
    if (t.passing() === false) break
  }
})

t.test('a heartbeat is compact', async (t) => {
  const hb = encodeMessage({
    type: MessageType.Heartbeat,
    from: 1,
    to: 2,
    term: 7,
    logIndex: 0,
    logTerm: 0,
    commit: 1000,
    entries: [],
    reject: false,
    rejectHint: 0,
    transfer: false,
  })
  t.ok(hb.length <= 16, `heartbeat is ${hb.length} bytes`)
})

t.test('bogus counts and lengths fail fast without allocating', async (t) => {
  // version 1, Append, flags 0, 7 varint fields of 0, then an entry count of 2^53-1.
  const w = new ByteWriter()
  w.u8(1)
  w.u8(MessageType.Append)
  w.u8(0)
  for (let i = 0; i < 7; i++) w.uvarint(0)
  w.uvarint(Number.MAX_SAFE_INTEGER)
  const err = t.throws(() => decodeMessage(w.finish())) as DecodeError
  t.ok(err instanceof DecodeError)
  t.match(err.message, /entry count/)

  // One entry claiming 1 GiB of data with 3 bytes present.
  const w2 = new ByteWriter()
  w2.u8(1)
  w2.u8(MessageType.Append)
  w2.u8(0)
  for (let i = 0; i < 7; i++) w2.uvarint(0)
  w2.uvarint(1)
  w2.uvarint(1)
  w2.uvarint(1)
  w2.u8(1)
  w2.uvarint(2 ** 30)
  w2.raw(Uint8Array.from([1, 2, 3]))
  t.throws(() => decodeMessage(w2.finish()), DecodeError)

  // The configured max applies even when the bytes are present.
  const big = encodeMessage({
    ...genMessage(prng(1)),
    entries: [{ term: 1, index: 1, type: 1, data: new Uint8Array(100) }],
  })
  t.throws(() => decodeMessage(big, { ...DEFAULT_LIMITS, maxDataBytes: 99 }), DecodeError)
  t.doesNotThrow(() => decodeMessage(big, { ...DEFAULT_LIMITS, maxDataBytes: 100 }))
})

t.test('unknown version, type, flags and trailing bytes are rejected', async (t) => {
  const good = encodeMessage(genMessage(prng(3)))
  for (const [at, v] of [
    [0, 2],
    [1, 200],
    [2, 0x80],
  ] as const) {
    const b = good.slice()
    b[at] = v
    t.throws(() => decodeMessage(b), DecodeError, `byte ${at} = ${v}`)
  }
  const ext = new Uint8Array(good.length + 1)
  ext.set(good)
  t.throws(() => decodeMessage(ext), DecodeError)
})
