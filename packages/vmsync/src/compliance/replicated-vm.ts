// Behavioural compliance suite for ReplicatedVm implementations (SimulatedVm here, QemuVm in
// @plover/qemu). "Implements ReplicatedVm" means "passes these checks", not just "type-checks".
import { hashPage } from '../hashing/hash-pages.js'
import { HASH_BYTES } from '../hashing/messages.js'
import { PageHasher } from '../hashing/page-hasher.js'
import { type DirtyTracker, PAGE_SIZE, type ReplicatedVm, type VmExitInfo } from '../vm/replicated-vm.js'
import type { ComplianceTest } from './compliance-test.js'

export interface ComplianceSubject<V extends ReplicatedVm = ReplicatedVm> {
  readonly vm: V
  readonly dirty: DirtyTracker
  cleanup(): Promise<void>
}

export interface ComplianceOptions<V extends ReplicatedVm = ReplicatedVm> {
  /** An input frame that changes guest state; `i` makes successive requests distinct. */
  makeRequest(i: number): Uint8Array
  /** How many requests the dirty-tracking and copy checks inject. Default 20. */
  requestCount?: number
  /** Resolves once the VM has processed every frame injected so far (VM running). Default: sleep settleMs. */
  settle?(vm: V): Promise<void>
  /** Sleep used by the default settle. Default 500 ms. */
  settleMs?: number
  /**
   * Observable answers of the guest to query `i` (e.g. GET responses), run while the VM runs. When
   * given, the suite checks that a VM whose memory and device state were copied from another
   * answers exactly like it.
   */
  probe?(vm: V, i: number): Promise<unknown>
  /** Kills the VM unexpectedly (SIGKILL for QEMU, crash() for SimulatedVm); enables the 'exit' check. */
  crash?(vm: V): Promise<void> | void
  /**
   * Device-state equality after export→import→export (memory copied first). Default: byte
   * equality; QEMU's stream contains the real-time clock, so it passes a comparison that skips it.
   */
  sameDeviceState?(a: Uint8Array, b: Uint8Array): boolean
  /** Pages copied per readPages/writePages call in the full-copy check. Default 256. */
  copyChunkPages?: number
  /** Hash pool threads when the suite creates its own pool. Default 2. */
  hashThreads?: number
  /** A pool to use instead of creating one (the caller closes it). */
  hasher?: PageHasher
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

function range(from: number, to: number): Uint32Array {
  return Uint32Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i)
}

function pagesDiffering(a: Buffer, b: Buffer): number[] {
  const out: number[] = []
  for (let p = 0; p * HASH_BYTES < a.length; p++) {
    if (
      !a
        .subarray(p * HASH_BYTES, (p + 1) * HASH_BYTES)
        .equals(b.subarray(p * HASH_BYTES, (p + 1) * HASH_BYTES))
    )
      out.push(p)
  }
  return out
}

/** Runs every check as a subtest of `t`; each subtest gets fresh instances from `factory`. */
export async function runReplicatedVmCompliance<V extends ReplicatedVm>(
  t: ComplianceTest,
  factory: () => Promise<ComplianceSubject<V>>,
  options: ComplianceOptions<V>,
): Promise<void> {
  const hasher = options.hasher ?? new PageHasher({ threads: options.hashThreads ?? 2 })
  if (options.hasher === undefined) t.teardown(() => hasher.close())
  const requests = options.requestCount ?? 20
  const settle = options.settle ?? (() => sleep(options.settleMs ?? 500))
  let nextRequest = 0
  const injectRequests = async (vm: V, n: number) => {
    for (let i = 0; i < n; i++) await vm.injectFrame(options.makeRequest(nextRequest++))
  }
  const hashAll = (vm: V) => hasher.hash(vm.memorySource, 'all')

  /** Runs `body` with fresh subject(s), always cleaning up. */
  const check = (
    name: string,
    count: number,
    body: (t: ComplianceTest, s: ComplianceSubject<V>[]) => Promise<void>,
  ) =>
    t.test(name, async (t) => {
      const subjects: ComplianceSubject<V>[] = []
      try {
        for (let i = 0; i < count; i++) subjects.push(await factory())
        await body(t, subjects)
      } finally {
        for (const s of subjects) await s.cleanup()
      }
    })

  await check('geometry and memory source', 1, async (t, [{ vm }]) => {
    t.equal(vm.pageSize, PAGE_SIZE, 'page size')
    t.ok(Number.isInteger(vm.pageCount) && vm.pageCount > 0, `pageCount ${vm.pageCount}`)
    const src = vm.memorySource
    const bytes = src.kind === 'shared' ? src.buffer.byteLength : src.size
    t.equal(bytes, vm.pageCount * vm.pageSize, 'memory source covers exactly the guest RAM')
  })

  await check('pause and resume change runState, idempotently', 1, async (t, [{ vm }]) => {
    await vm.pause()
    t.equal(vm.runState, 'paused', 'paused')
    await vm.pause()
    t.equal(vm.runState, 'paused', 'second pause is a no-op')
    await vm.resume()
    t.equal(vm.runState, 'running', 'running')
    await vm.resume()
    t.equal(vm.runState, 'running', 'second resume is a no-op')
    await vm.pause()
    t.equal(vm.runState, 'paused', 'paused again')
  })

  await check(
    'while running: readPages works, writePages and device-state export reject',
    1,
    async (t, [{ vm }]) => {
      await vm.resume()
      const page = new Uint8Array(vm.pageSize)
      // Pre-copy reads the primary's pages while its guest runs.
      const read = await vm.readPages(Uint32Array.of(vm.pageCount - 1), page).then(
        () => true,
        () => false,
      )
      t.ok(read, 'readPages while running')
      await t.rejects(vm.writePages(Uint32Array.of(vm.pageCount - 1), page), /./, 'writePages while running')
      await t.rejects(vm.exportDeviceState(), /./, 'exportDeviceState while running')
      await vm.pause()
    },
  )

  await check(
    'paused: writePages then readPages round-trips; readPages is the memory source',
    1,
    async (t, [{ vm }]) => {
      await vm.pause()
      const pages = Uint32Array.of(vm.pageCount - 1, Math.floor(vm.pageCount / 2))
      const original = new Uint8Array(pages.length * vm.pageSize)
      await vm.readPages(pages, original)
      t.same(
        Buffer.from(await hasher.hash(vm.memorySource, pages)),
        Buffer.concat([0, 1].map((i) => hashOf(original, i, vm.pageSize))),
        'readPages returns the bytes the memory source holds',
      )
      const pattern = Uint8Array.from(original, (b, i) => (b ^ 0xa5 ^ i) & 0xff)
      await vm.writePages(pages, pattern)
      const back = new Uint8Array(pattern.length)
      await vm.readPages(pages, back)
      t.ok(Buffer.from(back).equals(Buffer.from(pattern)), 'written bytes read back')
      await vm.writePages(pages, original) // restore before the guest runs again
      await vm.readPages(pages, back)
      t.ok(Buffer.from(back).equals(Buffer.from(original)), 'original contents restored')
    },
  )

  await check(
    'paused: untouched memory is stable and no page is reported dirty',
    1,
    async (t, [{ vm, dirty }]) => {
      await vm.resume()
      await injectRequests(vm, 2)
      await settle(vm)
      await vm.pause()
      await dirty.reset()
      const before = Buffer.from(await hashAll(vm))
      await sleep(50)
      const after = await hashAll(vm)
      t.same(pagesDiffering(before, after), [], 'no page changes while paused')
      t.same([...(await dirty.collect())], [], 'reset then no change: nothing dirty')
    },
  )

  await check('dirty tracking detects writePages', 1, async (t, [{ vm, dirty }]) => {
    await vm.pause()
    const pages = Uint32Array.of(1, vm.pageCount - 2)
    const original = new Uint8Array(pages.length * vm.pageSize)
    await vm.readPages(pages, original)
    await dirty.reset()
    const changed = Uint8Array.from(original)
    for (let i = 0; i < pages.length; i++) changed[i * vm.pageSize + 7] ^= 0xff
    await vm.writePages(pages, changed)
    const found = new Set(await dirty.collect())
    for (const p of pages) t.ok(found.has(p), `written page ${p} reported dirty`)
    await vm.writePages(pages, original)
    await dirty.reset()
  })

  await check('dirty tracking covers every page a running guest changes', 1, async (t, [{ vm, dirty }]) => {
    await vm.pause()
    await dirty.reset()
    const before = Buffer.from(await hashAll(vm))
    await vm.resume()
    await injectRequests(vm, requests)
    await settle(vm)
    await vm.pause()
    const collected = await dirty.collect()
    const after = await hashAll(vm)
    const changed = pagesDiffering(before, after)
    t.ok(changed.length > 0, `the requests changed ${changed.length} pages`)
    let ascending = true
    for (let i = 0; i < collected.length; i++) {
      if (collected[i] >= vm.pageCount || (i > 0 && collected[i] <= collected[i - 1])) ascending = false
    }
    t.ok(ascending, 'collect() is strictly ascending and in range')
    const set = new Set(collected)
    const missed = changed.filter((p) => !set.has(p))
    t.same(missed, [], `all ${changed.length} changed pages are among the ${collected.length} collected`)
  })

  await check(
    'digests a tracker offers are those of the pages as they are',
    1,
    async (t, [{ vm, dirty }]) => {
      // WHY: a sync compares the backup against these instead of hashing; one stale digest would
      // leave a divergent page behind.
      if (!dirty.currentDigests) {
        t.comment('this tracker offers no digests (optional)')
        return
      }
      await vm.pause()
      await dirty.reset()
      await vm.resume()
      await injectRequests(vm, requests)
      await settle(vm)
      t.equal(await dirty.currentDigests(), undefined, 'none while the VM runs')
      await vm.pause()
      await dirty.collect()
      const offered = await dirty.currentDigests()
      t.ok(offered, 'offered for the paused VM')
      if (!offered) return
      const by = offered.hasher as Partial<Pick<PageHasher, 'hash'>>
      t.ok(typeof by.hash === 'function', 'named with the hasher that made them')
      const fresh = Buffer.from(await by.hash!(vm.memorySource, range(0, vm.pageCount)))
      t.ok(Buffer.from(offered.digests).equals(fresh), 'equal to hashing every page now with that hasher')
      // The host writes a page (a backup applying a transfer): stale unless brought up to date.
      const page = Uint32Array.of(3)
      const data = new Uint8Array(vm.pageSize)
      await vm.readPages(page, data)
      data[11] ^= 0xff
      await vm.writePages(page, data)
      const after = await dirty.currentDigests()
      if (after) {
        const now = Buffer.from(await by.hash!(vm.memorySource, range(0, vm.pageCount)))
        t.ok(Buffer.from(after.digests).equals(now), 'after a host write: exact again')
      } else t.ok(true, 'after a host write: none')
      await vm.resume()
      t.equal(await dirty.currentDigests(), undefined, 'none once the VM runs again')
    },
  )

  await check('frames injected while paused do not execute until resume', 1, async (t, [{ vm, dirty }]) => {
    await vm.pause()
    await dirty.reset()
    const before = Buffer.from(await hashAll(vm))
    await injectRequests(vm, 3)
    await sleep(100)
    t.same(pagesDiffering(before, await hashAll(vm)), [], 'memory unchanged while paused')
    t.same([...(await dirty.collect())], [], 'nothing dirty while paused')
    await vm.resume()
    await settle(vm)
    await vm.pause()
    t.ok(pagesDiffering(before, await hashAll(vm)).length > 0, 'the queued frames ran after resume')
  })

  /** Copies all of A's memory into B (both paused), in chunks of copyChunkPages. */
  const copyMemory = async (a: V, b: V) => {
    const chunk = options.copyChunkPages ?? 256
    const buf = new Uint8Array(chunk * a.pageSize)
    for (let from = 0; from < a.pageCount; from += chunk) {
      const pages = range(from, Math.min(a.pageCount, from + chunk))
      const view = buf.subarray(0, pages.length * a.pageSize)
      await a.readPages(pages, view)
      await b.writePages(pages, view)
    }
  }
  const sameDeviceState = options.sameDeviceState ?? ((x, y) => Buffer.from(x).equals(Buffer.from(y)))

  // WHY copy memory first: device state is only meaningful over the memory it was exported with
  // (QEMU validates virtio rings against guest RAM while loading), and the sync protocol always
  // sends pages before device state.
  await check('device state exported from one instance imports into another', 2, async (t, [a, b]) => {
    await a.vm.resume()
    await injectRequests(a.vm, 3)
    await settle(a.vm)
    await a.vm.pause()
    await b.vm.pause()
    t.equal(b.vm.pageCount, a.vm.pageCount, 'same geometry')
    const state = await a.vm.exportDeviceState()
    t.ok(state.length > 0, `device state is ${state.length} bytes`)
    await copyMemory(a.vm, b.vm)
    await b.vm.importDeviceState(state)
    const again = await b.vm.exportDeviceState()
    t.ok(sameDeviceState(state, again), 're-exported device state is identical')
  })

  await check('memory + device state copied from A make B continue like A', 2, async (t, [a, b]) => {
    await a.vm.resume()
    await injectRequests(a.vm, requests)
    await settle(a.vm)
    await a.vm.pause()
    await b.vm.pause()
    t.equal(b.vm.pageCount, a.vm.pageCount, 'same geometry')
    await copyMemory(a.vm, b.vm)
    await b.vm.importDeviceState(await a.vm.exportDeviceState())
    t.same(pagesDiffering(Buffer.from(await hashAll(a.vm)), await hashAll(b.vm)), [], 'memories identical')
    await a.dirty.reset()
    await b.dirty.reset()
    if (options.probe === undefined) {
      t.comment('no probe() given: skipping the answer comparison')
      return
    }
    await a.vm.resume()
    await b.vm.resume()
    for (let i = 0; i < 3; i++) {
      const [ra, rb] = await Promise.all([options.probe(a.vm, i), options.probe(b.vm, i)])
      t.same(rb, ra, `probe ${i}: B answers like A`)
    }
    await a.vm.pause()
    await b.vm.pause()
  })

  await check('close is idempotent, emits no exit, and later calls reject', 1, async (t, [{ vm }]) => {
    const exits: VmExitInfo[] = []
    vm.on('exit', (info) => exits.push(info))
    await vm.close()
    await vm.close()
    t.equal(vm.runState, 'exited', 'exited after close')
    await t.rejects(vm.resume(), /./, 'resume after close')
    await t.rejects(vm.injectFrame(options.makeRequest(nextRequest++)), /./, 'injectFrame after close')
    t.same(exits, [], "a requested close is not an 'exit'")
  })

  if (options.crash !== undefined) {
    const crash = options.crash
    await check("an unexpected death emits 'exit' once", 1, async (t, [{ vm }]) => {
      const exits: VmExitInfo[] = []
      const exited = new Promise<void>((resolve) =>
        vm.on('exit', (info) => {
          exits.push(info)
          resolve()
        }),
      )
      await vm.resume()
      await crash(vm)
      await Promise.race([exited, sleep(10_000)])
      await sleep(50)
      t.equal(exits.length, 1, "exactly one 'exit'")
      t.equal(vm.runState, 'exited', 'exited after the crash')
      t.ok(typeof exits[0]?.reason === 'string', `reason: ${exits[0]?.reason}`)
      await vm.close() // still resolves after a crash
    })
  } else {
    t.comment("no crash() given: skipping the 'exit' check")
  }
}

function hashOf(buf: Uint8Array, i: number, pageSize: number): Buffer {
  return hashPage(buf.subarray(i * pageSize, (i + 1) * pageSize))
}
