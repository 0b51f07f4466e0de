// The compliance suite must be able to fail: run it against deliberately broken VMs through a
// recording test double and check that the right checks fail (and nothing fails for a sound VM).
import { createHash } from 'node:crypto'
import t from 'tap'
import { runReplicatedVmCompliance } from '../../src/compliance/index.js'
import { PageHasher } from '../../src/hashing/index.js'
import { encodeKvRequest, KvOp, SimulatedVm } from '../../src/simulated/index.js'
import type { DirtyTracker } from '../../src/vm/replicated-vm.js'
import { Recorder } from './fixtures/recorder.js'

const hasher = new PageHasher({ threads: 2 })
t.teardown(() => hasher.close())

async function failuresFor(make: () => { vm: SimulatedVm; dirty: DirtyTracker }): Promise<string[]> {
  const rec = new Recorder()
  await runReplicatedVmCompliance(
    rec,
    async () => {
      const { vm, dirty } = make()
      await vm.resume()
      return { vm, dirty, cleanup: () => vm.close() }
    },
    {
      makeRequest: (i) =>
        encodeKvRequest({ op: KvOp.Set, clientId: 1, requestId: i + 1, key: `k${i}`, value: 'v' }),
      settle: (vm) => vm.drained(),
      crash: (vm) => vm.crash(),
      hasher,
    },
  )
  return rec.failures
}

t.test('a sound SimulatedVm has no failures', async (t) => {
  t.same(
    await failuresFor(() => {
      const vm = new SimulatedVm({ pageCount: 256 })
      return { vm, dirty: vm.dirtyTracker }
    }),
    [],
  )
})

t.test('a dirty tracker that misses a page is caught', async (t) => {
  const failures = await failuresFor(() => {
    const vm = new SimulatedVm({ pageCount: 256 })
    const dirty: DirtyTracker = {
      collect: async () => (await vm.dirtyTracker.collect()).slice(1), // drops the lowest page
      reset: () => vm.dirtyTracker.reset(),
    }
    return { vm, dirty }
  })
  t.match(failures.join('\n'), /covers every page a running guest changes/)
})

/** Offers every page's digests while the VM is paused, made at collect(); `stale` keeps them past host writes. */
function digestOffering(vm: SimulatedVm, opts: { stale: boolean }): DirtyTracker {
  let digests: Uint8Array | undefined
  const write = vm.writePages.bind(vm)
  vm.writePages = async (indices, data) => {
    await write(indices, data)
    if (!opts.stale) digests = undefined
  }
  return {
    collect: async () => {
      const dirty = await vm.dirtyTracker.collect()
      digests = await hasher.hash(vm.memorySource, 'all')
      return dirty
    },
    reset: () => vm.dirtyTracker.reset(),
    currentDigests: async () => {
      if (vm.runState !== 'paused') return undefined
      digests ??= await hasher.hash(vm.memorySource, 'all')
      return { hasher, digests }
    },
  }
}

t.test(
  'a tracker that offers exact digests passes; one that keeps them past a write is caught',
  async (t) => {
    const sound = await failuresFor(() => {
      const vm = new SimulatedVm({ pageCount: 256 })
      return { vm, dirty: digestOffering(vm, { stale: false }) }
    })
    t.same(sound, [], 'digests withdrawn on a host write: no failure')
    const stale = await failuresFor(() => {
      const vm = new SimulatedVm({ pageCount: 256 })
      return { vm, dirty: digestOffering(vm, { stale: true }) }
    })
    t.match(stale.join('\n'), /after a host write: exact again/)
  },
)

t.test('writePages accepted while running is caught', async (t) => {
  class Lax extends SimulatedVm {
    override async writePages(): Promise<void> {}
  }
  const failures = await failuresFor(() => {
    const vm = new Lax({ pageCount: 256 })
    return { vm, dirty: vm.dirtyTracker }
  })
  t.match(failures.join('\n'), /export reject: writePages while running/)
  t.match(failures.join('\n'), /round-trips/, 'a writePages that does nothing fails the round trip too')
})

t.test('readPages refused while running (no pre-copy possible) is caught', async (t) => {
  class PausedReadsOnly extends SimulatedVm {
    override async readPages(indices: Uint32Array, dst: Uint8Array): Promise<void> {
      if (this.runState === 'running') throw new Error('pause first')
      return super.readPages(indices, dst)
    }
  }
  const failures = await failuresFor(() => {
    const vm = new PausedReadsOnly({ pageCount: 256 })
    return { vm, dirty: vm.dirtyTracker }
  })
  t.match(
    failures.join('\n'),
    /readPages works, writePages and device-state export reject: readPages while running/,
  )
})

t.test('device state that forgets the RX queue or clock is caught', async (t) => {
  class Forgetful extends SimulatedVm {
    override async importDeviceState(): Promise<void> {}
  }
  const failures = await failuresFor(() => {
    const vm = new Forgetful({ pageCount: 256 })
    return { vm, dirty: vm.dirtyTracker }
  })
  t.match(failures.join('\n'), /re-exported device state is identical/)
})

t.test('a VM that validates device state against its memory (like QEMU) passes', async (t) => {
  // QEMU checks virtio ring indices in the incoming device state against guest RAM: device state
  // loads only over the memory it was exported with. This VM does the same with a memory hash, so
  // the suite must copy memory before importing device state (as the sync protocol does).
  class MemoryBound extends SimulatedVm {
    #memoryHash(): Buffer {
      const src = this.memorySource
      if (src.kind !== 'shared') throw new Error('SimulatedVm memory is shared')
      return createHash('sha256').update(new Uint8Array(src.buffer)).digest()
    }
    override async exportDeviceState(): Promise<Uint8Array> {
      return Buffer.concat([await super.exportDeviceState(), this.#memoryHash()])
    }
    override async importDeviceState(bytes: Uint8Array): Promise<void> {
      const hash = Buffer.from(bytes.subarray(bytes.length - 32))
      if (!hash.equals(this.#memoryHash())) throw new Error('device state does not match guest memory')
      await super.importDeviceState(bytes.subarray(0, bytes.length - 32))
    }
  }
  t.same(
    await failuresFor(() => {
      const vm = new MemoryBound({ pageCount: 256 })
      return { vm, dirty: vm.dirtyTracker }
    }),
    [],
  )
})
