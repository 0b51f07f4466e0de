// Pure consensus core (see docs/consensus.md)
export * from './core/types.js'
export * from './core/errors.js'
export {
  RaftCore,
  type RaftConfig,
  type RestoredState,
  type SoftState,
  type Ready,
  type Role,
  type Status,
  type FollowerStatus,
} from './core/raft.js'
export {
  encodeConfChange,
  decodeConfChange,
  applyConfChange,
  voterIds,
  roleOf,
  quorumSize,
} from './core/membership.js'
// Deterministic simulation and test infrastructure (reusable by other packages)
export { MemoryStorage } from './sim/storage.js'
export { describeEntry, describeMessage, describeReady } from './sim/describe.js'
export { InteractionEnv } from './sim/interaction.js'
export { runSimulation, defaultSimConfig, type SimConfig, type SimResult, type SimStats } from './sim/simulation.js'
export { SafetyChecker, SafetyViolation } from './sim/invariants.js'
export { Rng } from './sim/rng.js'
export { parseScript, printScript } from './sim/datadriven.js'
// Linearizability checking (Porcupine-style), reusable for any model
export { checkOperations, type CheckResult, type CheckOptions } from './linearizability/checker.js'
export type { Model, Operation } from './linearizability/model.js'
export { kvModel, type KvInput, type KvOutput, type KvOperation } from './linearizability/kv.js'
// Edges: binary codec, durable WAL, authenticated TCP transport, replica driver
export * from './codec/index.js'
export * from './wal/index.js'
export * from './transport/index.js'
export { LeadershipLostError, Replica, type ReplicaEvents, type ReplicaOptions, ReplicaStoppedError } from './replica/index.js'
