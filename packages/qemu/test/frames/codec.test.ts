import { randomBytes } from 'node:crypto'
import t from 'tap'
import { encodeFrame, FrameDecoder, MAX_FRAME_BYTES } from '../../src/frames/codec.js'
import { FrameDecodeError } from '../../src/frames/errors.js'

const frames = [randomBytes(60), randomBytes(1514), randomBytes(14), randomBytes(9000)]

t.test('round-trips frames however the stream is chunked', async (t) => {
  const wire = Buffer.concat(frames.map((f) => encodeFrame(f)))
  for (const chunk of [1, 3, 7, 64, 1500, wire.byteLength]) {
    const dec = new FrameDecoder()
    const out: Buffer[] = []
    for (let i = 0; i < wire.byteLength; i += chunk) out.push(...dec.push(wire.subarray(i, i + chunk)))
    t.same(out, frames, `chunks of ${chunk}`)
    t.equal(dec.bufferedBytes, 0)
  }
})

t.test('the wire format is a big-endian length, plus the vnet header length in vnet mode', async (t) => {
  const f = randomBytes(100)
  const plain = encodeFrame(f)
  t.equal(plain.readUInt32BE(0), 100)
  t.same(plain.subarray(4), f)
  const vnet = encodeFrame(f, { vnetHdr: true, vnetHdrLen: 12 })
  t.equal(vnet.readUInt32BE(0), 100)
  t.equal(vnet.readUInt32BE(4), 12)
  const dec = new FrameDecoder({ vnetHdr: true })
  t.same(dec.push(vnet), [f])
  t.equal(dec.lastVnetHdrLen, 12)
})

t.test('garbage gives a typed error and poisons the decoder', async (t) => {
  const dec = new FrameDecoder()
  t.throws(() => dec.push(Buffer.from('GET / HTTP/1.1\r\n')), FrameDecodeError)
  t.throws(() => dec.push(encodeFrame(randomBytes(60))), FrameDecodeError, 'no resync after garbage')
  const tooShort = Buffer.alloc(4)
  tooShort.writeUInt32BE(3)
  t.throws(() => new FrameDecoder().push(tooShort), FrameDecodeError)
  const tooLong = Buffer.alloc(4)
  tooLong.writeUInt32BE(MAX_FRAME_BYTES + 1)
  t.throws(() => new FrameDecoder().push(tooLong), FrameDecodeError)
  const badVnet = Buffer.alloc(8)
  badVnet.writeUInt32BE(60)
  badVnet.writeUInt32BE(61, 4)
  t.throws(() => new FrameDecoder({ vnetHdr: true }).push(badVnet), FrameDecodeError)
  t.throws(() => encodeFrame(new Uint8Array(0)), FrameDecodeError)
})

t.test('a partial frame waits for the rest', async (t) => {
  const dec = new FrameDecoder()
  const wire = encodeFrame(randomBytes(200))
  t.same(dec.push(wire.subarray(0, 2)), [])
  t.same(dec.push(wire.subarray(2, 100)), [])
  t.equal(dec.bufferedBytes, 100)
  t.equal(dec.push(wire.subarray(100)).length, 1)
})
