import t from 'tap'
import { decodeMessage, encodeMessage } from '../../src/codec/message.js'
import { ByteWriter } from '../../src/codec/writer.js'
import { decodeRecordBody, FRAME_HEADER, RecordType, readFrame, writeRecord } from '../../src/wal/record.js'
import { decodeSnapshotFile, decodeSnapshotHeader, encodeSnapshotFile } from '../../src/wal/snapshot-file.js'
import { fuzzDecoder } from './fuzz.js'
import { genEntry, genHardState, genMessage, genSnapshot } from './gen.js'
import { int, mutate, prng } from './prng.js'

// Every decoder of untrusted bytes, with random and mutated inputs. Seeds are fixed so CI is
// reproducible; FUZZ_SEED / FUZZ_CASES override them for longer local runs.
const seed = Number(process.env.FUZZ_SEED ?? 20261125)
const cases = Number(process.env.FUZZ_CASES ?? 3000)

t.test('wire messages', async (t) => {
  fuzzDecoder(
    t,
    'decodeMessage',
    (b) => decodeMessage(b),
    (rnd) => encodeMessage(genMessage(rnd)),
    { seed, cases },
  )
})

function walRecord(rnd: () => number): Uint8Array {
  const w = new ByteWriter()
  const k = int(rnd, 3)
  if (k === 0) writeRecord(w, { type: RecordType.Entry, entry: genEntry(rnd) })
  else if (k === 1) writeRecord(w, { type: RecordType.HardState, hardState: genHardState(rnd) })
  else writeRecord(w, { type: RecordType.SnapshotInstall, index: int(rnd, 1e9), term: int(rnd, 1e6) })
  return w.finish().slice()
}

t.test('WAL record bodies', async (t) => {
  fuzzDecoder(
    t,
    'decodeRecordBody',
    (b) => decodeRecordBody(b),
    (rnd) => walRecord(rnd).subarray(FRAME_HEADER),
    {
      seed: seed + 1,
      cases,
    },
  )
})

t.test('WAL frames: readFrame never throws and never accepts a damaged record', async (t) => {
  const rnd = prng(seed + 2)
  let undetected = 0
  for (let i = 0; i < cases * 2; i++) {
    const valid = walRecord(rnd)
    const input = i < cases ? mutate(rnd, valid) : mutate(rnd, mutate(rnd, valid))
    let f: ReturnType<typeof readFrame>
    try {
      f = readFrame(input, 0, 1 << 20)
    } catch (e) {
      t.fail(`readFrame threw ${(e as Error).message}`, {
        seed,
        i,
        input: Buffer.from(input).toString('hex'),
      })
      return
    }
    // An accepted frame must be byte-identical to the original record (CRC caught the rest),
    // unless the mutation only appended bytes after it.
    if (f.kind === 'ok') {
      const same = Buffer.from(input.subarray(0, f.next)).equals(Buffer.from(valid))
      if (!same) undetected++
    }
  }
  t.equal(undetected, 0, 'CRC32C caught every mutation of a record')
})

t.test('snapshot headers and files', async (t) => {
  const sample = (rnd: () => number) => encodeSnapshotFile(genSnapshot(rnd))
  fuzzDecoder(t, 'decodeSnapshotHeader', (b) => decodeSnapshotHeader(b), sample, { seed: seed + 3, cases })
  fuzzDecoder(t, 'decodeSnapshotFile', (b) => decodeSnapshotFile(b), sample, { seed: seed + 4, cases })
  const rnd = prng(seed + 5)
  for (let i = 0; i < 200; i++) {
    const s = genSnapshot(rnd)
    t.same(decodeSnapshotFile(encodeSnapshotFile(s)), s)
  }
})
