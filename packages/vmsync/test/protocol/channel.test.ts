// SyncChannel: buffering ahead of the protocol, typed rejection of stale/duplicate messages,
// bounded waits, peer aborts, and garbage closing the link.
import t from 'tap'
import { createMemoryLinkPair } from '../../src/link/memory-link.js'
import { SyncChannel } from '../../src/protocol/channel.js'
import { encodeSyncMessage } from '../../src/protocol/codec.js'
import {
  DuplicateMessageError,
  MalformedMessageError,
  ProtocolViolationError,
  StaleEpochError,
  SyncAbortedError,
  SyncTimeoutError,
} from '../../src/protocol/errors.js'
import { SyncMessageType } from '../../src/protocol/messages.js'
import { encodedPrecopyPages } from './fixtures/harness.js'

const accepts = [SyncMessageType.Dirty, SyncMessageType.Ack, SyncMessageType.Abort]
const dirty = (epoch: number) => ({
  type: SyncMessageType.Dirty as const,
  epoch,
  needFull: false,
  baseline: 0,
  deviceBase: 0,
  pages: new Uint32Array(0),
})
const flush = () => new Promise((r) => setTimeout(r, 5))

function setup() {
  const [a, b] = createMemoryLinkPair()
  const ch = new SyncChannel(b, { accepts })
  const rejected: Error[] = []
  ch.on('rejected', (e) => rejected.push(e))
  return { a, ch, rejected }
}

t.test('messages that arrive early are buffered; take() finds them', async (t) => {
  const { a, ch } = setup()
  await a.send(encodeSyncMessage(dirty(3)))
  await flush()
  const m = await ch.take(3, [SyncMessageType.Dirty], 100)
  t.equal(m.epoch, 3)
})

t.test('stale and duplicate messages are rejected with typed errors; the link stays up', async (t) => {
  const { a, ch, rejected } = setup()
  ch.setFloor(5)
  await a.send(encodeSyncMessage(dirty(4)))
  await a.send(encodeSyncMessage(dirty(5)))
  await a.send(encodeSyncMessage(dirty(5)))
  await flush()
  t.ok(rejected[0] instanceof StaleEpochError, 'stale')
  t.match(rejected[0].message, /stale Dirty for epoch 4 \(current epoch 5\)/)
  t.ok(rejected[1] instanceof DuplicateMessageError, 'duplicate')
  t.equal(rejected.length, 2)
  t.ok(ch.isOpen)
  t.equal((await ch.take(5, [SyncMessageType.Dirty], 100)).epoch, 5, 'the first copy is delivered')
})

t.test('take() is bounded', async (t) => {
  const { ch } = setup()
  await t.rejects(ch.take(1, [SyncMessageType.Ack], 20), SyncTimeoutError)
})

t.test('a peer Abort fails the waiting step with SyncAbortedError', async (t) => {
  const { a, ch } = setup()
  const p = ch.take(2, [SyncMessageType.Ack], 1000)
  await a.send(encodeSyncMessage({ type: SyncMessageType.Abort, epoch: 2, reason: 'backup VM crashed' }))
  await t.rejects(p, SyncAbortedError)
  await t.rejects(
    ch.take(2, [SyncMessageType.Dirty], 1000),
    /peer aborted: backup VM crashed/,
    'and later steps too',
  )
})

t.test('garbage closes the link with MalformedMessageError and fails the waiter', async (t) => {
  const { a, ch } = setup()
  const p = ch.take(1, [SyncMessageType.Ack], 1000)
  const closed = new Promise<Error | undefined>((r) => ch.once('close', r))
  await a.send(Buffer.from([0xde, 0xad, 0xbe, 0xef]))
  await t.rejects(p, MalformedMessageError)
  t.ok((await closed) instanceof MalformedMessageError)
  t.notOk(ch.isOpen)
})

t.test('a message type this side never receives is a protocol violation', async (t) => {
  const { a, ch } = setup()
  const closed = new Promise<Error | undefined>((r) => ch.once('close', r))
  await a.send(encodeSyncMessage({ type: SyncMessageType.Hashes, epoch: 1, hashes: new Uint8Array(16) }))
  const err = await closed
  t.ok(err instanceof ProtocolViolationError, err?.message ?? 'no error')
})

t.test('link loss fails the waiter', async (t) => {
  const { a, ch } = setup()
  const p = ch.take(1, [SyncMessageType.Ack], 1000)
  a.close()
  await t.rejects(p, { name: 'LinkClosedError' })
})

t.test('pre-copy messages bypass epochs: handed over as they arrive, never rejected as stale', async (t) => {
  const [a, b] = createMemoryLinkPair()
  const ch = new SyncChannel(b, { accepts: [...accepts, SyncMessageType.PrecopyOffer] })
  ch.setFloor(9)
  const got: number[] = []
  ch.on('precopy', (m) => got.push(m.type === SyncMessageType.PrecopyOffer ? m.hashes.length : -1))
  const rejected: Error[] = []
  ch.on('rejected', (e) => rejected.push(e))
  for (let i = 0; i < 2; i++) {
    await a.send(
      encodeSyncMessage({ type: SyncMessageType.PrecopyOffer, epoch: 0, hashes: new Uint8Array(32) }),
    )
  }
  await flush()
  t.same(got, [32, 32], 'both offers delivered, the repeat too (a new offer after a later distrust)')
  t.same(rejected, [], 'epoch 0 is below the floor but not stale for pre-copy')
  await t.rejects(
    ch.take(0, [SyncMessageType.PrecopyOffer], 20),
    { name: 'SyncTimeoutError' },
    'never buffered',
  )
  // Still subject to the side's accept list.
  const closed = new Promise<Error | undefined>((r) => ch.once('close', r))
  await a.send(encodedPrecopyPages([1]))
  t.ok((await closed) instanceof ProtocolViolationError, 'pages on the primary side close the link')
})
