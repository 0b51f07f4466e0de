// Sync message codec: every message round-trips; every truncation, bad header and random
// garbage decodes to MalformedMessageError (never a RangeError, never a half-built message).
import t from 'tap'
import { decodeSyncMessage, encodeSyncMessage } from '../../src/protocol/codec.js'
import { MalformedMessageError } from '../../src/protocol/errors.js'
import {
  decodeSyncDone,
  decodeSyncMarker,
  encodeSyncDone,
  encodeSyncMarker,
} from '../../src/protocol/marker.js'
import { type SyncMessage, SyncMessageType, SyncMode } from '../../src/protocol/messages.js'
import { rng } from './fixtures/harness.js'

const page = (fill: number) => new Uint8Array(4096).fill(fill)

const samples: SyncMessage[] = [
  {
    type: SyncMessageType.Dirty,
    epoch: 1,
    needFull: false,
    baseline: 2 ** 47 + 3,
    deviceBase: 2 ** 40 + 1,
    pages: Uint32Array.from([0, 5, 9]),
  },
  {
    type: SyncMessageType.Dirty,
    epoch: 2 ** 40,
    needFull: true,
    baseline: 0,
    deviceBase: 0,
    pages: new Uint32Array(0),
  },
  { type: SyncMessageType.Union, epoch: 3, mode: SyncMode.Remus, pages: Uint32Array.from([1, 2, 3]) },
  { type: SyncMessageType.Hashes, epoch: 3, hashes: new Uint8Array(48).fill(7) },
  {
    type: SyncMessageType.Pages,
    epoch: 4,
    seq: 2,
    indices: Uint32Array.from([3, 8]),
    data: Uint8Array.from(Buffer.concat([page(1), page(2)])),
  },
  {
    type: SyncMessageType.TransferEnd,
    epoch: 4,
    pageCount: 2,
    batchCount: 1,
    syncId: 12345,
    checksum: new Uint8Array(16).fill(9),
    deviceStateBase: 2 ** 33 + 7,
    deviceState: Uint8Array.from([1, 2, 3]),
  },
  { type: SyncMessageType.Ack, epoch: 5 },
  { type: SyncMessageType.Abort, epoch: 6, reason: 'backup VM crashed ✗' },
  { type: SyncMessageType.Union, epoch: 7, mode: SyncMode.Deferred, pages: new Uint32Array(0) },
  { type: SyncMessageType.PrecopyOffer, epoch: 0, hashes: new Uint8Array(64).fill(3) },
  {
    type: SyncMessageType.PrecopyPages,
    epoch: 0,
    round: 2,
    indices: Uint32Array.from([4, 7]),
    data: Uint8Array.from(Buffer.concat([page(5), page(6)])),
  },
]

t.test('round trip', async (t) => {
  for (const m of samples) {
    const back = decodeSyncMessage(encodeSyncMessage(m))
    t.same(normalize(back), normalize(m), SyncMessageType[m.type])
  }
})

function normalize(m: SyncMessage): unknown {
  return JSON.parse(JSON.stringify(m, (_k, v) => (ArrayBuffer.isView(v) ? Array.from(v as Uint8Array) : v)))
}

t.test('every truncation is a MalformedMessageError', async (t) => {
  let checked = 0
  for (const m of samples) {
    const bytes = encodeSyncMessage(m)
    const step = Math.max(1, Math.floor(bytes.length / 300))
    for (let n = 0; n < bytes.length; n += step) {
      try {
        decodeSyncMessage(bytes.subarray(0, n))
        t.fail(`${SyncMessageType[m.type]} truncated to ${n} decoded`)
      } catch (err) {
        if (!(err instanceof MalformedMessageError)) t.fail(`wrong error ${(err as Error).name}`)
        checked++
      }
    }
    t.throws(
      () => decodeSyncMessage(Buffer.concat([bytes, Buffer.from([0])])),
      MalformedMessageError,
      'trailing byte',
    )
  }
  t.ok(checked > 100, `${checked} truncations rejected`)
})

t.test('bad headers and semantic garbage', async (t) => {
  const good = encodeSyncMessage(samples[0])
  const mutate = (i: number, v: number) => {
    const b = Uint8Array.from(good)
    b[i] = v
    return b
  }
  t.throws(() => decodeSyncMessage(mutate(0, 0x00)), /bad magic/)
  t.throws(() => decodeSyncMessage(mutate(1, 9)), /unsupported version/)
  t.throws(() => decodeSyncMessage(mutate(2, 99)), /unknown message type/)
  t.throws(() => decodeSyncMessage(mutate(11, 2)), /needFull/)
  const unsorted = encodeSyncMessage({ ...samples[0], pages: Uint32Array.from([0, 9, 5]) } as SyncMessage)
  t.throws(() => decodeSyncMessage(unsorted), /not strictly ascending/)
  const badMode = Uint8Array.from(encodeSyncMessage(samples[2]))
  badMode[11] = 7
  t.throws(() => decodeSyncMessage(badMode), /bad sync mode/)
  const oddHashes = encodeSyncMessage({ type: SyncMessageType.Hashes, epoch: 1, hashes: new Uint8Array(17) })
  t.throws(() => decodeSyncMessage(oddHashes), /multiple of 16/)
})

t.test('seeded random garbage never escapes as anything but MalformedMessageError', async (t) => {
  const rand = rng(1234)
  let ok = 0
  for (let i = 0; i < 5000; i++) {
    const len = Math.floor(rand() * 64)
    const b = new Uint8Array(len)
    for (let j = 0; j < len; j++) b[j] = Math.floor(rand() * 256)
    // Half the time keep a valid header so the body decoders are exercised too.
    if (len > 3 && rand() < 0.5) {
      b[0] = 0x5c
      b[1] = 1
      b[2] = 1 + Math.floor(rand() * 7)
    }
    try {
      decodeSyncMessage(b)
      ok++
    } catch (err) {
      if (!(err instanceof MalformedMessageError)) {
        t.fail(`garbage #${i} threw ${(err as Error).name}: ${(err as Error).message}`)
        return
      }
    }
  }
  t.pass(`5000 garbage inputs handled (${ok} happened to decode)`)
})

t.test('log record payloads', async (t) => {
  t.same(decodeSyncMarker(encodeSyncMarker({ epoch: 12, outputCount: 99 })), { epoch: 12, outputCount: 99 })
  t.same(decodeSyncDone(encodeSyncDone({ epoch: 12 })), { epoch: 12 })
  t.throws(() => decodeSyncMarker(new Uint8Array([1, 2])), MalformedMessageError)
  t.throws(() => decodeSyncDone(new Uint8Array([2, 0, 0, 0, 0, 0, 0, 0, 0])), /version/)
})
