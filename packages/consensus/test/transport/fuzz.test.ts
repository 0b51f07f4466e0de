import { randomBytes as cryptoRandom } from 'node:crypto'
import { connect } from 'node:net'
import t from 'tap'
import { TRANSPORT_CONTEXT } from '../../src/transport/connection.js'
import { FrameDecoder, FrameError, frameHeader } from '../../src/transport/framing.js'
import {
  decodeChallenge,
  decodeHello,
  decodeProof,
  encodeChallenge,
  encodeHello,
  encodeProof,
} from '../../src/transport/handshake.js'
import { TcpTransport } from '../../src/transport/transport.js'
import { fuzzDecoder } from '../codec/fuzz.js'
import { int, mutate, prng, randomBytes } from '../codec/prng.js'
import { KEY } from './helpers.js'

const seed = Number(process.env.FUZZ_SEED ?? 4242)
const cases = Number(process.env.FUZZ_CASES ?? 3000)

t.test('handshake decoders', async (t) => {
  fuzzDecoder(
    t,
    'decodeHello',
    decodeHello,
    (r) =>
      encodeHello({
        context: randomBytes(r, 1 + int(r, 64)),
        from: int(r, 9),
        to: int(r, 9),
        nonce: randomBytes(r, 32),
      }),
    {
      seed,
      cases,
    },
  )
  fuzzDecoder(
    t,
    'decodeChallenge',
    decodeChallenge,
    (r) => encodeChallenge({ from: int(r, 9), nonce: randomBytes(r, 32), proof: randomBytes(r, 32) }),
    { seed: seed + 1, cases },
  )
  fuzzDecoder(t, 'decodeProof', decodeProof, (r) => encodeProof(randomBytes(r, 32)), {
    seed: seed + 2,
    cases,
  })
})

t.test('frame decoder: random streams in random chunkings only ever throw FrameError', async (t) => {
  const rnd = prng(seed + 3)
  let frames = 0
  for (let i = 0; i < cases; i++) {
    // Half: valid frames concatenated, then mutated; half: pure noise.
    let stream: Uint8Array
    if (i % 2 === 0) {
      const parts: Uint8Array[] = []
      for (let k = int(rnd, 5); k >= 0; k--) {
        const p = randomBytes(rnd, int(rnd, 300))
        parts.push(frameHeader(p.length), p)
      }
      stream = mutate(rnd, Buffer.concat(parts))
    } else stream = randomBytes(rnd, int(rnd, 400))
    const dec = new FrameDecoder(1024)
    try {
      let off = 0
      while (off < stream.length) {
        const n = 1 + int(rnd, 64)
        dec.push(Buffer.from(stream.subarray(off, off + n)))
        off += n
        for (let f = dec.next(); f; f = dec.next()) {
          if (f.length > 1024) throw new Error('frame above max returned')
          frames++
        }
      }
    } catch (e) {
      if (!(e instanceof FrameError)) {
        t.fail(`non-FrameError: ${(e as Error).message}`, { seed, i })
        return
      }
    }
  }
  t.ok(frames > 0, `${frames} frames decoded`)
})

t.test('a live listener survives 60 connections of random bytes', async (t) => {
  const tr = new TcpTransport({
    id: 2,
    listen: { host: '127.0.0.1', port: 0 },
    peers: new Map([[1, { host: '127.0.0.1', port: 1 }]]),
    clusterKey: KEY,
    handshakeTimeoutMs: 300,
  })
  t.teardown(() => tr.close())
  const port = await tr.start()
  const reasons: string[] = []
  tr.on('disconnected', (i) => reasons.push(i.reason))
  const rnd = prng(seed + 4)
  await Promise.all(
    Array.from({ length: 60 }, (_, i) => {
      const s = connect({ host: '127.0.0.1', port })
      s.on('error', () => {})
      // Some start like a real hello, then go wrong.
      const head =
        i % 3 === 0
          ? Buffer.from(
              encodeHello({
                context: Buffer.from(TRANSPORT_CONTEXT),
                from: 1,
                to: 2,
                nonce: cryptoRandom(32),
              }),
            )
          : Buffer.alloc(0)
      s.write(
        Buffer.concat([
          i % 3 === 0 ? frameHeader(head.length) : Buffer.alloc(0),
          head,
          randomBytes(rnd, 1 + int(rnd, 300)),
        ]),
      )
      return new Promise<void>((r) => s.on('close', () => r()).resume())
    }),
  )
  await new Promise((r) => setTimeout(r, 50))
  t.equal(reasons.length, 60, 'every hostile connection was dropped with a reason')
  t.ok(reasons.every((r) => r.length > 0))
})
