// Behavioural compliance suites: "implements X" means "passes these checks", not just
// "type-checks". One per interface a user may implement: a ReplicatedVm (SimulatedVm here, QemuVm
// in @plover/qemu), the SyncLink the sync protocol runs over (TCP, in-memory), and the OrderedLog
// that orders inputs (consensus, in-memory).
export type { ComplianceTest } from './compliance-test.js'
export { type OrderedLogGroup, runOrderedLogCompliance } from './ordered-log.js'
export {
  type ComplianceOptions,
  type ComplianceSubject,
  runReplicatedVmCompliance,
} from './replicated-vm.js'
export { runSyncLinkCompliance, type SyncLinkComplianceOptions, type SyncLinkPair } from './sync-link.js'
