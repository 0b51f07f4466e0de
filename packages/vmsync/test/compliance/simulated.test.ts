import t from 'tap'
import { runReplicatedVmCompliance } from '../../src/compliance/index.js'
import { PageHasher } from '../../src/hashing/index.js'
import { encodeKvRequest, KvClient, KvOp, SimulatedVm } from '../../src/simulated/index.js'

// WHY one pool: starting workers under the TypeScript loader takes seconds.
const hasher = new PageHasher({ threads: 2 })
t.teardown(() => hasher.close())

// Two modes: the default (nondeterministic) VM, and the deterministic one the protocol tests use.
for (const deterministic of [false, true]) {
  t.test(`SimulatedVm (deterministic: ${deterministic})`, async (t) => {
    await runReplicatedVmCompliance(
      t,
      async () => {
        const vm = new SimulatedVm({ pageCount: 512, deterministic })
        await vm.resume()
        return { vm, dirty: vm.dirtyTracker, cleanup: () => vm.close() }
      },
      {
        makeRequest: (i) =>
          encodeKvRequest({
            op: KvOp.Set,
            clientId: 1,
            requestId: i + 1,
            key: `key${i % 7}`,
            value: `value-${i}`,
          }),
        settle: (vm) => vm.drained(),
        probe: async (vm, i) => {
          const c = new KvClient(vm, 1000 + i)
          try {
            const keys = await Promise.all(Array.from({ length: 7 }, (_, k) => c.get(`key${k}`)))
            return { keys, counter: await c.incr('probe-counter', i + 1) }
          } finally {
            c.close()
          }
        },
        crash: (vm) => vm.crash('compliance test'),
        hasher,
      },
    )
  })
}
