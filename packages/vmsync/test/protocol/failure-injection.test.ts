// Failure injected at every protocol step: the primary or the backup "dies" (its link is
// destroyed) before/after each message, messages are duplicated or replayed stale, garbage is
// written mid-sync. Every time the backup must be consistent — byte-equal to its pre-sync state
// or to the complete new state — and a later sync over a fresh link must make it equal again.
import t from 'tap'
import { createMemoryLinkPair } from '../../src/link/memory-link.js'
import { DuplicateMessageError, MalformedMessageError, StaleEpochError } from '../../src/protocol/errors.js'
import { type SyncMessage, SyncMessageType } from '../../src/protocol/messages.js'
import {
  type FaultAction,
  FaultyLink,
  firstDiff,
  preparedPair,
  sameSnapshot,
  snapshot,
  syncBoth,
  tcpPair,
} from './fixtures/harness.js'

type Expect = 'old' | 'new' | 'either'

interface Case {
  readonly name: string
  readonly side: 'primary' | 'backup'
  readonly fault: (m: SyncMessage, sent: readonly SyncMessage[]) => FaultAction
  readonly expect: Expect
  /** The faulty side dies when it receives this message type, before acting on it. */
  readonly dieOnReceive?: SyncMessageType
}

const at =
  (type: SyncMessageType, action: FaultAction, nth = 0) =>
  (m: SyncMessage, sent: readonly SyncMessage[]): FaultAction =>
    m.type === type && sent.filter((s) => s.type === type).length === nth ? action : 'pass'

const cases: Case[] = [
  {
    name: 'primary dies before Union',
    side: 'primary',
    fault: at(SyncMessageType.Union, 'close-before'),
    expect: 'old',
  },
  {
    name: 'primary dies after Union',
    side: 'primary',
    fault: at(SyncMessageType.Union, 'close-after'),
    expect: 'old',
  },
  {
    name: 'primary dies before the first page batch',
    side: 'primary',
    fault: at(SyncMessageType.Pages, 'close-before'),
    expect: 'old',
  },
  {
    name: 'primary dies mid-transfer (batch 2)',
    side: 'primary',
    fault: at(SyncMessageType.Pages, 'close-before', 2),
    expect: 'old',
  },
  {
    name: 'link drops after batch 1',
    side: 'primary',
    fault: at(SyncMessageType.Pages, 'close-after', 1),
    expect: 'old',
  },
  {
    name: 'primary dies before TransferEnd',
    side: 'primary',
    fault: at(SyncMessageType.TransferEnd, 'close-before'),
    expect: 'old',
  },
  {
    name: 'primary dies after TransferEnd, before processing the Ack',
    side: 'primary',
    fault: () => 'pass',
    dieOnReceive: SyncMessageType.Ack,
    expect: 'new',
  },
  {
    name: 'backup dies before Dirty',
    side: 'backup',
    fault: at(SyncMessageType.Dirty, 'close-before'),
    expect: 'old',
  },
  {
    name: 'backup dies before Hashes',
    side: 'backup',
    fault: at(SyncMessageType.Hashes, 'close-before'),
    expect: 'old',
  },
  {
    name: 'backup dies after Hashes',
    side: 'backup',
    fault: at(SyncMessageType.Hashes, 'close-after'),
    expect: 'either',
  },
  {
    name: 'backup dies before Ack (already applied)',
    side: 'backup',
    fault: at(SyncMessageType.Ack, 'close-before'),
    expect: 'new',
  },
]

for (const [i, c] of cases.entries()) {
  t.test(c.name, async (t) => {
    const pair = await preparedPair(100 + i)
    t.teardown(() => pair.close())
    const oldB = await snapshot(pair.bvm)
    const newState = await snapshot(pair.pvm)
    t.notOk(sameSnapshot(oldB, newState), 'precondition: the sides differ')

    const tcp = await tcpPair()
    const dies = (m: SyncMessage) => m.type === c.dieOnReceive
    const pLink = c.side === 'primary' ? new FaultyLink(tcp.a, c.fault, dies) : tcp.a
    const bLink = c.side === 'backup' ? new FaultyLink(tcp.b, c.fault, dies) : tcp.b
    pair.primary.attachLink(pLink)
    pair.backup.attachLink(bLink)
    const failures: string[] = []
    pair.primary.on('sync-failed', (f) => failures.push(`primary: ${f.reason}`))
    pair.backup.on('sync-failed', (f) => failures.push(`backup: ${f.reason}`))
    const r = await syncBoth(pair, 2)
    await tcp.close()
    t.ok(failures.length > 0, `the fault made the sync fail somewhere (${failures.join('; ')})`)

    const b = await snapshot(pair.bvm)
    const isOld = sameSnapshot(b, oldB)
    const isNew = sameSnapshot(b, newState)
    if (c.expect === 'old') t.ok(isOld, `backup kept its pre-sync state (${firstDiff(b, oldB)})`)
    else if (c.expect === 'new')
      t.ok(isNew, `backup holds the complete new state (${firstDiff(b, newState)})`)
    else t.ok(isOld || isNew, 'backup is either pre-sync or complete')
    t.ok(isOld || isNew, 'never half-applied')
    t.ok(sameSnapshot(await snapshot(pair.pvm), newState), 'primary state unchanged by the failed sync')
    if (r.p) t.ok(isNew, 'if the primary saw an Ack, the backup applied')

    // Recovery: a fresh link, the next epoch converges (the primary kept its dirty baseline).
    const again = await tcpPair()
    t.teardown(() => again.close())
    pair.primary.attachLink(again.a)
    pair.backup.attachLink(again.b)
    const ok = await syncBoth(pair, 3)
    t.ok(ok.p && ok.b, 'next sync completes')
    const pb = await snapshot(pair.pvm)
    const bb = await snapshot(pair.bvm)
    t.ok(sameSnapshot(pb, bb), `equal after recovery sync (${firstDiff(pb, bb)})`)
  })
}

t.test('duplicated messages are rejected with DuplicateMessageError and the sync completes', async (t) => {
  for (const [side, type] of [
    ['primary', SyncMessageType.Pages],
    ['primary', SyncMessageType.Union],
    ['backup', SyncMessageType.Hashes],
    ['backup', SyncMessageType.Dirty],
  ] as const) {
    const pair = await preparedPair(7)
    const tcp = await tcpPair()
    const fault = at(type, 'duplicate')
    pair.primary.attachLink(side === 'primary' ? new FaultyLink(tcp.a, fault) : tcp.a)
    pair.backup.attachLink(side === 'backup' ? new FaultyLink(tcp.b, fault) : tcp.b)
    const rejected: Error[] = []
    pair.primary.on('rejected', (e) => rejected.push(e))
    pair.backup.on('rejected', (e) => rejected.push(e))
    const r = await syncBoth(pair, 2)
    t.ok(r.p && r.b, `${side} duplicating ${SyncMessageType[type]}: sync completes`)
    t.ok(
      rejected.some((e) => e instanceof DuplicateMessageError),
      `duplicate ${SyncMessageType[type]} rejected as DuplicateMessageError`,
    )
    t.ok(sameSnapshot(await snapshot(pair.pvm), await snapshot(pair.bvm)), 'equal')
    await tcp.close()
    await pair.close()
  }
})

t.test('stale messages from a finished epoch are rejected and answered with Abort', async (t) => {
  const pair = await preparedPair(8)
  t.teardown(() => pair.close())
  const tcp = await tcpPair()
  t.teardown(() => tcp.close())
  const spy = new FaultyLink(tcp.b, () => 'pass')
  pair.primary.attachLink(tcp.a)
  pair.backup.attachLink(spy)
  await syncBoth(pair, 2)
  const rejected: Error[] = []
  pair.primary.on('rejected', (e) => rejected.push(e))
  const aborts: Uint8Array[] = []
  tcp.b.on('message', (p) => aborts.push(p))
  // Replay the backup's epoch-2 Dirty after epoch 2 finished (e.g. a restarted backup replaying).
  const { encodeSyncMessage } = await import('../../src/protocol/codec.js')
  const dirty = spy.sent.find((m) => m.type === SyncMessageType.Dirty)!
  await tcp.b.send(encodeSyncMessage(dirty))
  await new Promise((r) => setTimeout(r, 50))
  t.ok(rejected[0] instanceof StaleEpochError, 'StaleEpochError')
  t.equal((rejected[0] as StaleEpochError).epoch, 2)
  const { decodeSyncMessage } = await import('../../src/protocol/codec.js')
  t.ok(
    aborts.map(decodeSyncMessage).some((m) => m.type === SyncMessageType.Abort && m.epoch === 2),
    'primary told the backup that epoch is over',
  )
  t.ok(tcp.a.isOpen && tcp.b.isOpen, 'a stale message does not drop the link')
})

t.test('garbage on the sync link mid-sync: clear error, link dropped, nothing applied', async (t) => {
  const pair = await preparedPair(9)
  t.teardown(() => pair.close())
  const oldB = await snapshot(pair.bvm)
  const [a, b] = createMemoryLinkPair()
  // After the Union, the "primary" writes bytes that are not a sync message.
  const garbler = new FaultyLink(a, () => 'pass')
  const origSend = garbler.send.bind(garbler)
  garbler.send = async (payload) => {
    await origSend(payload)
    if (garbler.sent.at(-1)?.type === SyncMessageType.Union)
      await a.send(Buffer.from('GET / HTTP/1.1\r\n\r\n'))
  }
  pair.primary.attachLink(garbler)
  pair.backup.attachLink(b)
  const closed = new Promise<Error | undefined>((resolve) => b.once('close', resolve))
  const r = await syncBoth(pair, 2)
  const err = await closed
  t.ok(
    err instanceof MalformedMessageError,
    `backup closed the link with MalformedMessageError: ${err?.message}`,
  )
  t.notOk(r.b, 'backup sync failed')
  t.ok(sameSnapshot(await snapshot(pair.bvm), oldB), 'backup unchanged')
})
