// In-order, exactly-once delivery: markers are barriers, records at or below the cursor are
// skipped (log replays after a restart), inputs are skipped while the VM state is untrusted.
import t from 'tap'
import { encodeFrameBatch } from '../../src/input/frame-batch.js'
import { InputDelivery } from '../../src/input/input-delivery.js'
import { MemoryLogCluster } from '../../src/log/memory-log.js'
import { LogRecordKind } from '../../src/log/ordered-log.js'
import { encodeSyncDone, encodeSyncMarker } from '../../src/protocol/marker.js'

function fakeVm() {
  const got: string[] = []
  return {
    got,
    async injectFrame(f: Uint8Array) {
      await new Promise((r) => setImmediate(r)) // slow VM: exposes any reordering
      got.push(Buffer.from(f).toString())
    },
  }
}

const input = (...s: string[]) => encodeFrameBatch(s.map((x) => Buffer.from(x)))

t.test('log order, markers are barriers, SyncDone observed', async (t) => {
  const cluster = new MemoryLogCluster()
  const log = cluster.join()
  cluster.setLeader(log)
  const vm = fakeVm()
  const seen: string[] = []
  let releaseMarker!: () => void
  const d = new InputDelivery(vm, {
    hooks: {
      onMarker: (index, m) => {
        seen.push(`marker ${m.epoch} at ${index} after [${vm.got.join(',')}]`)
        return new Promise<void>((r) => {
          releaseMarker = r
        })
      },
      onSyncDone: (_i, done) => seen.push(`done ${done.epoch}`),
    },
  })
  d.attach(log)
  await log.propose(LogRecordKind.Input, input('a', 'b'))
  await log.propose(LogRecordKind.SyncMarker, encodeSyncMarker({ epoch: 1, outputCount: 0 }))
  await log.propose(LogRecordKind.Input, input('c'))
  await new Promise((r) => setTimeout(r, 20))
  t.same(vm.got, ['a', 'b'], 'input after the marker waits for the sync')
  t.same(seen, ['marker 1 at 2 after [a,b]'])
  releaseMarker()
  await log.propose(LogRecordKind.SyncDone, encodeSyncDone({ epoch: 1 }))
  await d.idle()
  t.same(vm.got, ['a', 'b', 'c'])
  t.same(seen.at(-1), 'done 1')
  t.equal(d.appliedThrough, 4)
})

t.test('exactly once across a restart: a replaying log is skipped at or below the cursor', async (t) => {
  const cluster = new MemoryLogCluster()
  const log = cluster.join()
  cluster.setLeader(log)
  for (const s of ['a', 'b', 'c', 'd']) await log.propose(LogRecordKind.Input, input(s))
  // The restarted replica's VM reflects everything through index 2 (its last completed sync).
  const replayed = cluster.join({ replayFrom: 1 })
  const vm = fakeVm()
  const skipped: number[] = []
  const d = new InputDelivery(vm, { appliedThrough: 2 })
  d.on('skipped', (i) => skipped.push(i))
  d.attach(replayed)
  await new Promise((r) => setTimeout(r, 20))
  await d.idle()
  t.same(vm.got, ['c', 'd'], 'only records after the cursor')
  t.same(skipped, [1, 2])
  // The adapter redelivers (e.g. after reconnect): still once.
  for (const r of cluster.records) d.push(r)
  await d.idle()
  t.same(vm.got, ['c', 'd'], 'redelivered records are not delivered twice')
})

t.test('untrusted VM: inputs skipped until a full sync, then delivered after the marker', async (t) => {
  const cluster = new MemoryLogCluster()
  const log = cluster.join()
  cluster.setLeader(log)
  const vm = fakeVm()
  const d = new InputDelivery(vm, { skipInputs: true })
  d.hooks = {
    onMarker: async () => {
      d.setSkipInputs(false) // what a completed full sync does
    },
  }
  d.attach(log)
  await log.propose(LogRecordKind.Input, input('old'))
  await log.propose(LogRecordKind.SyncMarker, encodeSyncMarker({ epoch: 1, outputCount: 0 }))
  await log.propose(LogRecordKind.Input, input('new'))
  await new Promise((r) => setTimeout(r, 20))
  await d.idle()
  t.same(vm.got, ['new'])
})

t.test('a VM that refuses a frame stops delivery with a fault', async (t) => {
  const d = new InputDelivery({ injectFrame: async () => Promise.reject(new Error('VM exited')) })
  const faults: Error[] = []
  d.on('fault', (e) => faults.push(e))
  d.push({ index: 1, kind: LogRecordKind.Input, data: input('x') })
  d.push({ index: 2, kind: LogRecordKind.Input, data: input('y') })
  await d.idle()
  t.equal(faults.length, 1)
  t.equal(d.appliedThrough, 0, 'cursor not advanced past the failed record')
})

t.test('undecodable records are skipped with a reason, not delivered', async (t) => {
  const vm = fakeVm()
  const d = new InputDelivery(vm)
  const reasons: string[] = []
  d.on('skipped', (_i, r) => reasons.push(r))
  d.push({ index: 1, kind: LogRecordKind.Input, data: Uint8Array.from([9]) })
  d.push({ index: 2, kind: LogRecordKind.SyncMarker, data: Uint8Array.from([1]) })
  await d.idle()
  t.equal(reasons.length, 2)
  t.same(vm.got, [])
})

t.test('a gap in the log: skipped while untrusted, reported as missed inputs otherwise', async (t) => {
  const rec = (index: number, s: string) => ({ index, kind: LogRecordKind.Input, data: input(s) })

  const untrustedVm = fakeVm()
  const waiting = new InputDelivery(untrustedVm, { skipInputs: true })
  const missedWhileWaiting: number[][] = []
  waiting.on('missed', (a, b) => missedWhileWaiting.push([a, b]))
  waiting.skipThrough(10)
  waiting.push(rec(10, 'old'))
  await waiting.idle()
  t.equal(waiting.appliedThrough, 10, 'the cursor moves past the compacted records')
  t.same(missedWhileWaiting, [], 'an untrusted VM loses nothing it relied on')

  const vm = fakeVm()
  const d = new InputDelivery(vm)
  const missed: number[][] = []
  // The owner reacts synchronously, as VmReplica does: the VM is untrusted from here on.
  d.on('missed', (from, through) => {
    missed.push([from, through])
    d.setSkipInputs(true)
  })
  d.push(rec(1, 'a'))
  d.skipThrough(5)
  d.push(rec(4, 'stale'))
  d.push(rec(6, 'b'))
  d.skipThrough(3) // behind the cursor: nothing to report
  await d.idle()
  t.same(vm.got, ['a'], 'nothing after the gap reaches a VM that missed inputs')
  t.same(missed, [[2, 5]], 'the missed range, once')
  t.equal(d.appliedThrough, 6)
})
