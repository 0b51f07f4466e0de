// Leadership changes between two VM replicas that are both alive:
//   - a newly promoted primary closes the sync epochs of every marker it has applied, so a backup
//     that replays old markers gets an Abort for each at once (not a peer timeout per marker);
//   - a deposed primary stays trusted (its VM only ever executed committed inputs): after a
//     spurious election it continues as a backup and the next incremental sync makes it
//     identical; if the new primary dies before any sync, it can lead again without a full sync
//     and without losing acknowledged outputs.
import t, { type Test } from 'tap'
import { createMemoryLinkPair } from '../../src/link/memory-link.js'
import { MemoryLogCluster } from '../../src/log/memory-log.js'
import type { SyncFailure, SyncReport } from '../../src/metrics/sync-report.js'
import { decodeSyncMessage, encodeSyncMessage } from '../../src/protocol/codec.js'
import { StaleEpochError } from '../../src/protocol/errors.js'
import { isFullSync, SyncMessageType, SyncMode } from '../../src/protocol/messages.js'
import { VmReplica } from '../../src/protocol/vm-replica.js'
import {
  decodeKvResponse,
  encodeKvRequest,
  KvOp,
  type KvResponse,
  KvStatus,
  SimulatedVm,
} from '../../src/simulated/index.js'
import { firstDiff, makePair, sameSnapshot, snapshot, syncHasher, waitEvent } from './fixtures/harness.js'

t.test('PrimarySync.closeEpochsThrough: a Dirty for a closed epoch is answered with Abort', async (t) => {
  const pair = await makePair({ trusted: true })
  t.teardown(() => pair.close())
  pair.primary.closeEpochsThrough(3)
  const [a, b] = createMemoryLinkPair()
  pair.primary.attachLink(a)
  const rejected: Error[] = []
  pair.primary.on('rejected', (e) => rejected.push(e))
  const got: number[][] = []
  b.on('message', (p) => {
    const m = decodeSyncMessage(p)
    got.push([m.type, m.epoch])
  })
  for (const epoch of [1, 3]) {
    await b.send(
      encodeSyncMessage({
        type: SyncMessageType.Dirty,
        epoch,
        needFull: true,
        baseline: 0,
        deviceBase: 0,
        pages: new Uint32Array(0),
      }),
    )
  }
  await new Promise((r) => setTimeout(r, 30))
  t.ok(
    rejected.length === 2 && rejected.every((e) => e instanceof StaleEpochError),
    'both Dirty rejected as stale',
  )
  t.same(
    got,
    [
      [SyncMessageType.Abort, 1],
      [SyncMessageType.Abort, 3],
    ],
    'and each answered with Abort',
  )
  t.ok(a.isOpen && b.isOpen, 'the link stays up')
  // A marker for a closed epoch is skipped, a later one is not.
  const skipped: number[] = []
  pair.primary.on('sync-skipped', (e) => skipped.push(e))
  t.equal(await pair.primary.runSync({ epoch: 2, outputCount: 0 }), undefined, 'epoch 2 is over')
  t.same(skipped, [2])
})

interface Node {
  readonly vm: SimulatedVm
  readonly replica: VmReplica
  readonly log: ReturnType<MemoryLogCluster['join']>
}

async function node(
  cluster: MemoryLogCluster,
  seed: number,
  role: 'primary' | 'backup',
  opts: { replayFrom?: number; peerTimeoutMs?: number; precopy?: false } = {},
): Promise<Node> {
  const log = cluster.join({ replayFrom: opts.replayFrom })
  const vm = new SimulatedVm({ pageCount: 256, seed, tickMs: 0 })
  await vm.resume()
  const replica = new VmReplica({
    log,
    vm,
    tracker: vm.dirtyTracker,
    hasher: syncHasher,
    role,
    quiesce: () => vm.drained(),
    quietMaxMs: 500,
    peerTimeoutMs: opts.peerTimeoutMs ?? 5000,
    precopy: opts.precopy,
  })
  return { vm, replica, log }
}

function connect(primary: VmReplica, backup: VmReplica): void {
  const [a, b] = createMemoryLinkPair()
  primary.attachLink(a)
  backup.attachLink(b)
}

async function sync(primary: VmReplica, backup: VmReplica): Promise<{ p: SyncReport; b: SyncReport }> {
  const pDone = waitEvent<[SyncReport]>(primary, 'sync-completed')
  const bDone = waitEvent<[SyncReport]>(backup, 'sync-completed')
  const epoch = await primary.requestSync()
  const [[p], [b]] = await Promise.all([pDone, bDone])
  await waitEvent(primary.primary!, 'committed', (e: number) => e >= epoch)
  return { p, b }
}

async function settle(...nodes: Node[]): Promise<void> {
  for (const n of nodes) {
    await n.replica.batcher.drain()
  }
  await new Promise((r) => setTimeout(r, 10))
  for (const n of nodes) {
    await n.replica.delivery.idle()
    await n.vm.drained()
  }
}

let requestId = 1
function set(r: VmReplica, key: string, value: string): number {
  const id = requestId++
  r.pushInput(encodeKvRequest({ op: KvOp.Set, clientId: 9, requestId: id, key, value }))
  return id
}
function get(r: VmReplica, key: string): number {
  const id = requestId++
  r.pushInput(encodeKvRequest({ op: KvOp.Get, clientId: 9, requestId: id, key }))
  return id
}

t.test('a promoted primary aborts a joining backup’s replayed old markers at once', async (t) => {
  const cluster = new MemoryLogCluster()
  const A = await node(cluster, 1, 'primary')
  const B = await node(cluster, 2, 'backup')
  cluster.setLeader(A.log)
  connect(A.replica, B.replica)
  const closers: Node[] = [A, B]
  t.teardown(async () => {
    for (const n of closers) {
      await n.replica.close()
      await n.vm.close()
    }
  })
  // Several epochs under A.
  for (let i = 0; i < 4; i++) {
    set(A.replica, `k${i}`, `v${i}`)
    await A.replica.batcher.drain()
    await sync(A.replica, B.replica)
  }
  // A dies; B leads and is promoted.
  cluster.leave(A.log)
  await A.replica.close()
  cluster.setLeader(B.log)
  t.equal(B.replica.role, 'primary')
  // A fresh backup joins and replays the whole log (4 old markers). The peer timeout is long:
  // a backup left waiting for an old epoch's Union would time out this test.
  const C = await node(cluster, 3, 'backup', { replayFrom: 1, peerTimeoutMs: 60_000 })
  closers.push(C)
  // Its pre-copy may converge, and B request the full sync's marker itself, before ours below.
  const firstOfC = waitEvent<[SyncReport]>(C.replica, 'sync-completed', () => true, 20_000)
  connect(B.replica, C.replica)
  const failures: SyncFailure[] = []
  C.replica.on('sync-failed', (f) => failures.push(f))
  const old = await waitEventCount(failures, 4, 10_000)
  t.ok(old, `the 4 replayed old markers ended (${failures.length} failures)`)
  t.ok(
    failures.every((f) => f.error.name === 'SyncAbortedError'),
    `each by the primary's Abort: ${failures.map((f) => f.error.name).join(',')}`,
  )
  await sync(B.replica, C.replica)
  const [first] = await firstOfC
  t.equal(first.mode, SyncMode.FullCompared, 'then the new backup gets its full sync')
  t.ok(sameSnapshot(await snapshot(B.vm), await snapshot(C.vm)), 'and equals the primary')
})

async function waitEventCount(arr: readonly unknown[], n: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (arr.length < n) {
    if (Date.now() > deadline) return false
    await new Promise((r) => setTimeout(r, 10))
  }
  return true
}

async function syncedPair(t: Test, opts: { precopy?: false } = {}) {
  const cluster = new MemoryLogCluster()
  const A = await node(cluster, 11, 'primary', opts)
  const B = await node(cluster, 22, 'backup', opts)
  cluster.setLeader(A.log)
  connect(A.replica, B.replica)
  t.teardown(async () => {
    for (const n of [A, B]) {
      await n.replica.close()
      await n.vm.close()
    }
  })
  const first = await sync(A.replica, B.replica)
  t.equal(first.p.mode, SyncMode.FullCompared, 'first sync is full')
  for (let i = 0; i < 30; i++) set(A.replica, `a${i}`, `va${i}`)
  await A.replica.batcher.drain()
  const second = await sync(A.replica, B.replica)
  t.equal(second.p.mode, SyncMode.Vsmr, 'then incremental')
  return { cluster, A, B }
}

t.test('spurious election: the deposed primary stays trusted and is synced incrementally', async (t) => {
  const { cluster, A, B } = await syncedPair(t)
  // Inputs executed by A after the last sync, committed (so B executes them too).
  for (let i = 0; i < 10; i++) set(A.replica, `b${i}`, `vb${i}`)
  await settle(A, B)
  t.ok(A.replica.guard.stats().heldFrames > 0, 'A holds answers of an unsynced epoch')
  const releasedByA: KvResponse[] = []
  A.replica.on('release', (f) => releasedByA.push(decodeKvResponse(f)))

  cluster.setLeader(B.log) // A is demoted, B promoted, both alive
  t.equal(A.replica.role, 'backup', 'A demoted')
  t.equal(B.replica.role, 'primary', 'B promoted')
  t.equal(A.replica.backup?.needFull, false, 'A is not marked for a full sync')
  t.equal(A.replica.trusted, true, 'A stays trusted')
  t.equal(A.replica.delivery.skippingInputs, false, 'A keeps executing committed inputs')
  t.same(releasedByA, [], 'its held answers were dropped, not released')

  connect(B.replica, A.replica)
  for (let i = 0; i < 10; i++) set(B.replica, `c${i}`, `vc${i}`)
  await B.replica.batcher.drain()
  const { p, b } = await sync(B.replica, A.replica)
  t.equal(p.mode, SyncMode.Vsmr, 'the next sync is incremental, not full')
  t.equal(b.side, 'backup')
  await settle(A, B)
  const bs = await snapshot(B.vm)
  const as = await snapshot(A.vm)
  t.ok(sameSnapshot(bs, as), `A equals B byte for byte (${firstDiff(bs, as)})`)
  t.equal(A.vm.logicalDigest(), B.vm.logicalDigest(), 'same logical content')
})

t.test(
  'the new primary dies before any sync: the old one leads again, no full sync, no lost write',
  async (t) => {
    const { cluster, A, B } = await syncedPair(t)
    cluster.setLeader(B.log)
    t.equal(A.replica.trusted, true)
    connect(B.replica, A.replica)
    // B is unprotected (no sync with A yet): its answers are released at once = acknowledged.
    const releasedByB: KvResponse[] = []
    B.replica.on('release', (f) => releasedByB.push(decodeKvResponse(f)))
    const ids = new Map<number, string>()
    for (let i = 0; i < 20; i++) ids.set(set(B.replica, `d${i}`, `vd${i}`), `d${i}`)
    await settle(A, B)
    const acked = releasedByB.filter((r) => ids.has(r.requestId) && r.status === KvStatus.Ok)
    t.equal(acked.length, 20, 'B acknowledged 20 writes')

    // B dies before any sync with A; A leads again.
    const fullSyncs: SyncReport[] = []
    A.replica.on('sync-completed', (r) => isFullSync(r.mode) && fullSyncs.push(r))
    cluster.leave(B.log)
    await B.replica.close()
    cluster.setLeader(A.log)
    t.equal(A.replica.role, 'primary', 'A promoted again')
    t.equal(A.replica.trusted, true, 'as a trusted primary')
    const answers: KvResponse[] = []
    A.replica.on('release', (f) => answers.push(decodeKvResponse(f)))
    const gets = new Map<number, string>()
    for (const key of ids.values()) gets.set(get(A.replica, key), key)
    await settle(A)
    let lost = 0
    for (const [id, key] of gets) {
      const r = answers.find((x) => x.requestId === id)
      if (!r || r.status !== KvStatus.Ok || Buffer.from(r.value).toString() !== `v${key}`) lost++
    }
    t.equal(lost, 0, 'every write B acknowledged is served by A')
    t.same(fullSyncs, [], 'without any full sync')
  },
)

t.test(
  'leadership alone does not promote an untrusted VM; promoted by hand, it stays untrusted',
  async (t) => {
    const cluster = new MemoryLogCluster()
    const A = await node(cluster, 1, 'primary')
    const B = await node(cluster, 2, 'backup') // never synced: needFull
    cluster.setLeader(A.log)
    t.teardown(async () => {
      for (const n of [A, B]) {
        await n.replica.close()
        await n.vm.close()
      }
    })
    set(A.replica, 'x', 'y')
    await settle(A, B)
    t.equal(B.replica.trusted, false)
    const refusals: string[] = []
    B.replica.on('primacy-refused', (why) => refusals.push(why))
    cluster.setLeader(B.log)
    t.equal(B.replica.role, 'backup', 'the log carried an input: leading does not make it primary')
    t.match(refusals, [/untrusted VM in a log that carried inputs/], 'and it says why')
    B.replica.promote() // the caller's decision, without vouching for the VM
    t.equal(B.replica.role, 'primary')
    t.equal(B.replica.trusted, false, 'promotion does not make a VM trusted')
    cluster.setLeader(A.log)
    t.equal(B.replica.trusted, false, 'nor does demotion')
    t.equal(B.replica.backup?.needFull, true, 'it waits for a full sync')
    t.equal(A.replica.trusted, true, 'the other one was trusted as primary and stays so')
  },
)

t.test('leadership of a log that never carried an input promotes a never-synced VM, trusted', async (t) => {
  const cluster = new MemoryLogCluster()
  const B = await node(cluster, 2, 'backup') // never synced: needFull
  t.teardown(async () => {
    await B.replica.close()
    await B.vm.close()
  })
  t.equal(B.replica.trusted, false)
  cluster.setLeader(B.log)
  t.equal(B.replica.role, 'primary', 'a brand-new cluster: it will execute every input')
  t.equal(B.replica.trusted, true, 'so it is a correct execution of the log')
})

t.test('a synced backup whose log was compacted past unapplied inputs is fully synced next', async (t) => {
  // Without pre-copy: once B is untrusted, A would request the full sync's marker itself, and
  // this test's gap (announced before its records exist) could swallow that marker.
  const { cluster, A, B } = await syncedPair(t, { precopy: false })
  await settle(A, B)
  t.equal(B.replica.trusted, true)
  const missed: number[][] = []
  B.replica.on('missed-inputs', (from, through) => missed.push([from, through]))
  // The next three records reach B only as a snapshot (compacted away before B applied them).
  const through = cluster.records.length + 3
  B.log.emit('gap', through)
  for (let i = 0; i < 6; i++) {
    set(A.replica, `g${i}`, `vg${i}`)
    await A.replica.batcher.drain() // one record each
  }
  await settle(A, B)
  t.equal(cluster.records.length, through + 3, 'six input records')
  t.same(missed, [[through - 2, through]], 'the missed range is reported')
  t.equal(B.replica.trusted, false, 'B is untrusted')
  t.equal(B.replica.delivery.skippingInputs, true, 'and stops executing inputs')
  const { p } = await sync(A.replica, B.replica)
  t.equal(p.mode, SyncMode.FullCompared, 'its next sync is full')
  await settle(A, B)
  t.equal(B.replica.trusted, true, 'trusted again')
  const as = await snapshot(A.vm)
  const bs = await snapshot(B.vm)
  t.ok(sameSnapshot(as, bs), `B equals A byte for byte (${firstDiff(as, bs)})`)
})
