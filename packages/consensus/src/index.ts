// Pure consensus core (see docs/consensus.md)

// Edges: binary codec, durable WAL, authenticated TCP transport, replica driver
export * from './codec/index.js'
export * from './core/errors.js'
export {
  applyConfChange,
  decodeConfChange,
  encodeConfChange,
  quorumSize,
  roleOf,
  voterIds,
} from './core/membership.js'
export {
  type FollowerStatus,
  type RaftConfig,
  RaftCore,
  type Ready,
  type RestoredState,
  type Role,
  type SoftState,
  type Status,
} from './core/raft.js'
export * from './core/types.js'
// Linearizability checking (Porcupine-style), reusable for any model
export { type CheckOptions, type CheckResult, checkOperations } from './linearizability/checker.js'
export { type KvInput, type KvOperation, type KvOutput, kvModel } from './linearizability/kv.js'
export type { Model, Operation } from './linearizability/model.js'
export {
  LeadershipLostError,
  Replica,
  type ReplicaEvents,
  type ReplicaOptions,
  ReplicaStoppedError,
} from './replica/index.js'
export { parseScript, printScript } from './sim/datadriven.js'
export { describeEntry, describeMessage, describeReady } from './sim/describe.js'
export { InteractionEnv } from './sim/interaction.js'
export { SafetyChecker, SafetyViolation } from './sim/invariants.js'
export { Rng } from './sim/rng.js'
export {
  defaultSimConfig,
  runSimulation,
  type SimConfig,
  type SimResult,
  type SimStats,
} from './sim/simulation.js'
// Deterministic simulation and test infrastructure (reusable by other packages)
export { MemoryStorage } from './sim/storage.js'
export * from './transport/index.js'
export * from './wal/index.js'
