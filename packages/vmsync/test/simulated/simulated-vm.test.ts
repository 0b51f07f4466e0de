import t from 'tap'
import { hashPagesSync } from '../../src/hashing/index.js'
import {
  decodeKvResponse,
  encodeKvRequest,
  KvClient,
  KvOp,
  KvStatus,
  SimulatedVm,
  type SimulatedVmOptions,
} from '../../src/simulated/index.js'

const PAGES = 256 // 1 MiB guests keep the tests quick

async function running(opts: SimulatedVmOptions = {}): Promise<SimulatedVm> {
  const vm = new SimulatedVm({ pageCount: PAGES, ...opts })
  await vm.resume()
  return vm
}

/** A reproducible mixed workload (SET/GET/INCR/DEL over a small key space). */
function workload(n: number, seed: number): Uint8Array[] {
  let s = seed >>> 0 || 1
  const rnd = () => {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    return (s >>> 0) / 0x100000000
  }
  const frames: Uint8Array[] = []
  for (let i = 0; i < n; i++) {
    const key = `k${Math.floor(rnd() * 200)}`
    const r = rnd()
    const op = r < 0.45 ? KvOp.Set : r < 0.8 ? KvOp.Get : r < 0.93 ? KvOp.Incr : KvOp.Del
    const value = op === KvOp.Set ? 'v'.repeat(1 + Math.floor(rnd() * 900)) + i : op === KvOp.Incr ? '3' : ''
    frames.push(
      encodeKvRequest({ op, clientId: 7, requestId: i + 1, key: op === KvOp.Incr ? `n${key}` : key, value }),
    )
  }
  return frames
}

/** Injects frames and collects every response until the VM has drained. */
async function feed(vm: SimulatedVm, frames: Uint8Array[]): Promise<string[]> {
  const answers: string[] = []
  const on = (f: Uint8Array) => {
    const r = decodeKvResponse(f)
    answers.push(`${r.requestId}:${r.status}:${Buffer.from(r.value).toString()}`)
  }
  vm.on('frame-out', on)
  for (const f of frames) await vm.injectFrame(f)
  await vm.drained()
  vm.off('frame-out', on)
  return answers
}

function pageHashes(vm: SimulatedVm): Buffer {
  return hashPagesSync(vm.memorySource, 'all')
}

function differingPages(a: SimulatedVm, b: SimulatedVm): number[] {
  const ha = pageHashes(a)
  const hb = pageHashes(b)
  const out: number[] = []
  for (let p = 0; p < a.pageCount; p++)
    if (!ha.subarray(p * 16, p * 16 + 16).equals(hb.subarray(p * 16, p * 16 + 16))) out.push(p)
  return out
}

async function copyState(from: SimulatedVm, to: SimulatedVm): Promise<void> {
  const all = Uint32Array.from({ length: from.pageCount }, (_, i) => i)
  const buf = new Uint8Array(from.pageCount * from.pageSize)
  await from.readPages(all, buf)
  await to.writePages(all, buf)
  await to.importDeviceState(await from.exportDeviceState())
}

t.test('the KV service answers GET/SET/DEL/INCR', async (t) => {
  const vm = await running()
  const c = new KvClient(vm, 3)
  t.equal(await c.get('a'), null)
  await c.set('a', 'hello')
  t.equal(await c.get('a'), 'hello')
  await c.set('a', 'x'.repeat(3000)) // moves to a bigger size class
  t.equal(await c.get('a'), 'x'.repeat(3000))
  await c.set('a', 'short') // and back
  t.equal(await c.get('a'), 'short')
  t.equal(await c.incr('n'), 1)
  t.equal(await c.incr('n', 41), 42)
  t.equal(await c.incr('n', -50), -8)
  await t.rejects(c.incr('a'), /NotANumber/)
  t.equal(await c.del('a'), true)
  t.equal(await c.del('a'), false)
  t.equal(await c.get('a'), null)
  const big = await c.request(KvOp.Set, 'big', new Uint8Array(5000))
  t.equal(big.status, KvStatus.TooLarge)
  t.equal(vm.entryCount(), 1)
  t.match(vm.stats(), { sets: 4, dels: 2, incrs: 4 })
  c.close()
  await vm.close()
})

t.test('bad and foreign frames: BadRequest or dropped, never a crash', async (t) => {
  const vm = await running()
  const out: Uint8Array[] = []
  vm.on('frame-out', (f) => out.push(f))
  const good = encodeKvRequest({ op: KvOp.Set, clientId: 1, requestId: 9, key: 'k', value: 'v' })
  const truncated = good.subarray(0, good.length - 1)
  const badOp = Uint8Array.from(good)
  badOp[3] = 99
  await vm.injectFrame(truncated)
  await vm.injectFrame(badOp)
  await vm.injectFrame(new Uint8Array([1, 2, 3]))
  await vm.injectFrame(new Uint8Array(64))
  await vm.drained()
  t.equal(out.length, 2)
  t.same(
    out.map((f) => decodeKvResponse(f).status),
    [KvStatus.BadRequest, KvStatus.BadRequest],
  )
  t.equal(decodeKvResponse(out[0]).requestId, 9)
  t.match(vm.stats(), { dropped: 2, errors: 2 })
  await vm.close()
})

t.test('fills up: OutOfMemory, then frees and reuses', async (t) => {
  const vm = await running({ pageCount: 32 })
  const c = new KvClient(vm)
  let stored = 0
  for (;;) {
    const r = await c.request(KvOp.Set, `key${stored}`, 'z'.repeat(3000))
    if (r.status === KvStatus.OutOfMemory) break
    t.equal(r.status, KvStatus.Ok)
    stored++
  }
  t.ok(stored > 0 && stored < 32, `stored ${stored} 4 KiB records in a 32-page guest`)
  t.equal(await c.del('key0'), true)
  await c.set('again', 'z'.repeat(3000))
  t.equal(await c.get('again'), 'z'.repeat(3000))
  c.close()
  await vm.close()
})

t.test('same inputs after a sync: same answers; most pages identical, not all', async (t) => {
  const a = await running({ seed: 1, pageCount: 1024 })
  const b = await running({ seed: 2, pageCount: 1024 })
  await feed(a, workload(500, 41))
  await a.pause()
  await b.pause()
  await copyState(a, b) // an epoch starts from identical replicas, as after a sync
  await a.dirtyTracker.reset()
  await b.dirtyTracker.reset()
  await a.resume()
  await b.resume()
  const frames = workload(500, 42)
  const [ra, rb] = await Promise.all([feed(a, frames), feed(b, frames)])
  t.equal(ra.length, 500)
  t.same(ra, rb, 'answers depend only on inputs')
  t.equal(a.logicalDigest(), b.logicalDigest())
  await a.pause()
  await b.pause()
  const union = new Set([...(await a.dirtyTracker.collect()), ...(await b.dirtyTracker.collect())])
  const diff = differingPages(a, b)
  for (const p of diff) t.ok(union.has(p), `differing page ${p} is dirty on one side`)
  t.ok(diff.length >= 1, `nondeterminism shows: ${diff.length} pages differ`)
  t.ok(diff.length < union.size / 2, `${union.size - diff.length} of ${union.size} dirty pages identical`)
  await a.close()
  await b.close()
})

t.test('deterministic mode: byte-identical replicas', async (t) => {
  const a = await running({ deterministic: true })
  const b = await running({ deterministic: true })
  const frames = workload(1500, 7)
  t.same(await feed(a, frames), await feed(b, frames))
  await a.pause()
  await b.pause()
  t.same(differingPages(a, b), [])
  t.same(await a.exportDeviceState(), await b.exportDeviceState())
  await a.close()
  await b.close()
})

t.test('after pages + device state are copied, the backup continues exactly as the primary', async (t) => {
  const a = await running({ deterministic: true })
  const b = await running({ deterministic: true, pageCount: PAGES })
  await feed(b, workload(300, 99)) // b's own, different history
  const frames = workload(2000, 5)
  await feed(a, frames.slice(0, 1000))
  // Pause with frames still queued: the RX queue travels in device state.
  for (const f of frames.slice(1000, 1200)) await a.injectFrame(f)
  await a.pause()
  await b.pause()
  t.ok(a.pendingFrames > 0, `${a.pendingFrames} frames pending at the cut`)
  await copyState(a, b)
  t.same(differingPages(a, b), [])
  await a.resume()
  await b.resume()
  const rest = frames.slice(1200)
  const [ra, rb] = await Promise.all([feed(a, rest), feed(b, rest)])
  t.same(ra, rb)
  await a.pause()
  await b.pause()
  t.same(differingPages(a, b), [], 'still byte-identical')
  t.same(await b.exportDeviceState(), await a.exportDeviceState())
  await a.close()
  await b.close()
})

t.test('nondeterministic backup also answers like the primary after a sync', async (t) => {
  const a = await running({ seed: 11 })
  const b = await running({ seed: 12 })
  const frames = workload(1200, 3)
  await feed(a, frames.slice(0, 600))
  await a.pause()
  await b.pause()
  await copyState(a, b)
  await a.resume()
  await b.resume()
  t.same(await feed(b, frames.slice(600)), await feed(a, frames.slice(600)))
  t.equal(a.logicalDigest(), b.logicalDigest())
  await a.close()
  await b.close()
})

t.test('pause stops at a request boundary; resume continues', async (t) => {
  const vm = await running({ deterministic: true, framesPerTurn: 1000 })
  let seen = 0
  vm.on('frame-out', () => {
    if (++seen === 10) void vm.pause()
  })
  const frames = workload(500, 1)
  for (const f of frames) await vm.injectFrame(f)
  await new Promise((r) => setTimeout(r, 30))
  t.equal(vm.runState, 'paused')
  t.equal(vm.activity().executed, 10)
  t.equal(vm.pendingFrames, 490)
  await vm.resume()
  await vm.drained()
  t.equal(seen, 500)
  t.ok(vm.cpuTimeMs() > 0)
  await vm.close()
})

t.test('write barrier: dirty pages are exactly the written ones', async (t) => {
  const vm = new SimulatedVm({ pageCount: PAGES, deterministic: true })
  await vm.dirtyTracker.reset()
  t.same(await vm.dirtyTracker.collect(), new Uint32Array(0))
  const page = new Uint8Array(4096).fill(1)
  await vm.writePages(Uint32Array.from([200, 50]), new Uint8Array([...page, ...page]))
  t.same([...(await vm.dirtyTracker.collect())], [50, 200])
  await vm.dirtyTracker.reset()
  const before = pageHashes(vm)
  await vm.resume()
  await feed(vm, workload(200, 8))
  await vm.pause()
  const dirty = new Set(await vm.dirtyTracker.collect())
  const after = pageHashes(vm)
  let changed = 0
  for (let p = 0; p < PAGES; p++) {
    if (!before.subarray(p * 16, p * 16 + 16).equals(after.subarray(p * 16, p * 16 + 16))) {
      changed++
      t.ok(dirty.has(p), `changed page ${p} was tracked`)
    }
  }
  t.ok(changed > 0)
  await t.rejects(
    vm.resume().then(() => vm.dirtyTracker.collect()),
    /while the VM is running/,
  )
  await vm.close()
})

t.test('device state: checked, versioned, and only while paused', async (t) => {
  const vm = new SimulatedVm({ pageCount: PAGES })
  const other = new SimulatedVm({ pageCount: PAGES * 2 })
  const state = await vm.exportDeviceState()
  await vm.importDeviceState(state)
  const flipped = Uint8Array.from(state)
  flipped[20] ^= 1
  await t.rejects(vm.importDeviceState(flipped), /checksum/)
  const version = Uint8Array.from(state)
  version[5] = 9
  await t.rejects(vm.importDeviceState(version), /version 9/)
  await t.rejects(vm.importDeviceState(new Uint8Array(10)), /too short/)
  await t.rejects(vm.importDeviceState(new Uint8Array(100)), /magic/)
  await t.rejects(other.importDeviceState(state), /256-page VM/)
  await vm.resume()
  await t.rejects(vm.exportDeviceState(), /while the VM is running/)
  await t.rejects(vm.writePages(Uint32Array.from([0]), new Uint8Array(4096)), /while the VM is running/)
  await vm.close()
  await other.close()
})

t.test('crash emits exit once; close is idempotent and silent', async (t) => {
  const vm = await running()
  const exits: unknown[] = []
  vm.on('exit', (i) => exits.push(i))
  const c = new KvClient(vm)
  await vm.pause()
  const pending = c.get('x')
  vm.crash('test')
  vm.crash('again')
  await t.rejects(pending, /VM exited/)
  t.equal(vm.runState, 'exited')
  t.match(exits, [{ reason: 'test' }])
  await t.rejects(vm.injectFrame(new Uint8Array(1)), /exited/)
  await vm.close()
  const vm2 = await running()
  vm2.on('exit', () => t.fail('close must not emit exit'))
  await vm2.close()
  await vm2.close()
  t.equal(vm2.runState, 'exited')
})
