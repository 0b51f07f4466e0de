import t from 'tap'
import { decodeFrameBatch, encodeFrameBatch, FrameBatchError } from '../../src/input/frame-batch.js'

t.test('round trip and garbage', async (t) => {
  const frames = [Buffer.from('a'), Buffer.alloc(0), Buffer.alloc(1500, 7)]
  const back = decodeFrameBatch(encodeFrameBatch(frames))
  t.same(
    back.map((b) => Buffer.from(b)),
    frames,
  )
  const enc = encodeFrameBatch(frames)
  for (let n = 0; n < enc.length; n++) t.throws(() => decodeFrameBatch(enc.subarray(0, n)), FrameBatchError)
  t.throws(() => decodeFrameBatch(Uint8Array.from([1, 255, 255, 255, 255])), /claims/)
  t.throws(() => decodeFrameBatch(Uint8Array.from([9, 0, 0, 0, 0])), /version/)
  t.throws(() => decodeFrameBatch(Buffer.concat([enc, Buffer.from([0])])), /trailing/)
})
