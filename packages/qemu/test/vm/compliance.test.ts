// QemuVm against vmsync's ReplicatedVm compliance suite, on real QEMU running the redis guest.
// Requests are ICMP echoes injected through the filter-redirector; fresh VMs are clones of one
// booted guest (see fixtures/clone-vm.ts). All checks must pass: the device-state round trip copies
// memory first (QEMU validates virtio rings against guest RAM), and the RTC's host-clock registers
// are excluded from the comparison (sameDeviceState).
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

for (const deviceStateFormat of ['snapshot', 'migration'] as const)
  t.test(
    `QemuVm passes the ReplicatedVm compliance suite (device state as a ${deviceStateFormat})`,
    async (t) => {
      const env = requireQemu(t)
      if (!env) return
      const template = await bootTestGuest(t, env, {
        memoryMiB: 128,
        nic: { kind: 'user', redirectors: true },
      })
      const cloner = new VmCloner(template)
      const hasher = new PageHasher({ threads: 2 })
      t.teardown(() => hasher.close())
      await runReplicatedVmCompliance(
        t as unknown as ComplianceTest,
        async () => {
          const { process, standbys, cleanup } = await cloner.clone()
          const vm = await QemuVm.open({
            process,
            hasher,
            standbys,
            removeRamOnClose: true,
            deviceStateFormat,
          })
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
    },
  )
