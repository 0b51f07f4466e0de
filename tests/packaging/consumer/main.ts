// A user's first program against the published packages: everything is imported by package
// name from the installed tarballs (never from the workspace), compiled with strict TypeScript,
// and run. It composes a one-member consensus log, a SimulatedVm replica, the primacy gate, the
// sync scheduler with an idle monitor, and hashes a page; @plover/qemu and the compliance entry
// point are loaded but not driven (no QEMU here). It prints one JSON line for the test.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemberRole, Replica } from '@plover/consensus'
import { IdleMonitor } from '@plover/idle-monitor'
import { launch, QemuVm } from '@plover/qemu'
import {
  ConsensusOrderedLog,
  PageHasher,
  PrimacyGate,
  SimulatedVm,
  SimulatedVmCpuProbe,
  SyncScheduler,
  VmReplica,
  vmBackupCaughtUp,
} from '@plover/vmsync'
import { runReplicatedVmCompliance } from '@plover/vmsync/compliance'

const dir = mkdtempSync(join(tmpdir(), 'plover-consumer-'))
const replica = await Replica.open({
  id: 1,
  dir,
  listen: { host: '127.0.0.1', port: 0 },
  peers: new Map(),
  membership: { members: [{ id: 1, role: MemberRole.Voter }] },
  clusterKey: new Uint8Array(16).fill(1),
  tickMs: 5,
  electionTicks: 4,
})
const log = new ConsensusOrderedLog(replica)
const vm = new SimulatedVm({ pageCount: 64 })
const hasher = new PageHasher({ threads: 1 })
const vr = new VmReplica({
  log,
  vm,
  tracker: vm.dirtyTracker,
  hasher,
  role: 'backup',
  needFull: true,
  followLeadership: false,
})
const gate = new PrimacyGate({ replica, log, vm: vr })
const monitor = new IdleMonitor({ cpu: new SimulatedVmCpuProbe(vm) })
const scheduler = new SyncScheduler({ replica: vr, trigger: monitor, ready: () => vmBackupCaughtUp(replica) })
const promoted = await new Promise<{ trusted: boolean; freshLog: boolean }>((resolve) =>
  gate.on('promoted', resolve),
)
const digests = await hasher.hash(vm.memorySource, Uint32Array.of(0, 1))
console.log(
  JSON.stringify({
    promoted,
    role: vr.role,
    digestBytes: digests.length,
    loaded: [typeof launch, typeof QemuVm, typeof runReplicatedVmCompliance],
  }),
)
scheduler.close()
monitor.close()
gate.close()
await vr.close()
log.detach()
await hasher.close()
await vm.close()
await replica.close()
rmSync(dir, { recursive: true, force: true })
