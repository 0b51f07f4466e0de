// QemuVm against vmsync's ReplicatedVm compliance suite, on real QEMU running the redis guest.
// Requests are ICMP echoes injected through the filter-redirector; fresh VMs are clones of one
// booted guest (see fixtures/clone-vm.ts).
import { PageHasher } from '@plover/vmsync'
import { type ComplianceTest, runReplicatedVmCompliance } from '@plover/vmsync/compliance'
import t from 'tap'
import { sameDeviceState } from '../../src/migration/compare-state.js'
import { bootTestGuest } from '../../src/testing/boot-test-guest.js'
import { requireQemu } from '../../src/testing/require-qemu.js'
import { QemuVm } from '../../src/vm/qemu-vm.js'
import { VmCloner } from '../fixtures/clone-vm.js'
import { icmpEcho } from '../fixtures/frames.js'
import { GUEST_IP, PEER_IP, pingThroughNode } from '../fixtures/ping.js'

/**
 * The suite's check 'device state exported from one instance imports into another' loads A's
 * device state into B without copying A's memory first. QEMU validates device state against guest
 * RAM (virtio ring indices): the load marks virtio-net broken (NEEDS_RESET), and the re-export
 * differs. PLOVER never does that (pages first, then device state), and the suite's next check
 * does it in that order and passes. Marked TODO with this reason until the suite copies memory
 * there too; qemu-vm.test.ts checks the round trip with memory copied.
 */
const KNOWN_GAP = 'device state exported from one instance imports into another'
const KNOWN_GAP_REASON =
  'QEMU cannot load device state over non-matching RAM; the suite skips the memory copy here'

type TapLike = ComplianceTest & {
  test(name: string, opts: { todo: string }, fn: (t: ComplianceTest) => Promise<void>): unknown
}

function markKnownGap(t: TapLike): ComplianceTest {
  return new Proxy(t, {
    get(target, prop) {
      if (prop !== 'test') {
        // Bound to the real Test: tap's methods use private fields a Proxy receiver lacks.
        const value = Reflect.get(target, prop, target)
        return typeof value === 'function' ? value.bind(target) : value
      }
      return (name: string, fn: (t: ComplianceTest) => Promise<void>) =>
        name === KNOWN_GAP ? target.test(name, { todo: KNOWN_GAP_REASON }, fn) : target.test(name, fn)
    },
  })
}

t.test('QemuVm passes the ReplicatedVm compliance suite', async (t) => {
  const env = requireQemu(t)
  if (!env) return
  const template = await bootTestGuest(t, env, { memoryMiB: 128, nic: { kind: 'user', redirectors: true } })
  const cloner = new VmCloner(template)
  const hasher = new PageHasher({ threads: 2 })
  t.teardown(() => hasher.close())
  await runReplicatedVmCompliance(
    markKnownGap(t as unknown as TapLike),
    async () => {
      const { process, standbys, cleanup } = await cloner.clone()
      const vm = await QemuVm.open({ process, hasher, standbys, removeRamOnClose: true })
      return {
        vm,
        dirty: vm.dirty,
        cleanup: async () => {
          await vm.close()
          await cleanup()
        },
      }
    },
    {
      makeRequest: (i) => icmpEcho(PEER_IP, GUEST_IP, i, 1000),
      // The echo reply (IP header and payload): B, loaded from A, must answer exactly like A.
      probe: (vm, i) => pingThroughNode(vm as QemuVm, 40_000 + i),
      crash: (vm) => (vm as QemuVm).process.kill('SIGKILL'),
      // Equal apart from the RTC's host-clock registers (see src/migration/compare-state.ts).
      sameDeviceState,
    },
  )
})
