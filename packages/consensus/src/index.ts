// Public API. Sorted by path (biome): the pure consensus core (core/, see docs/consensus.md); the
// edges (binary codec, durable WAL, replica driver, authenticated TCP transport including the
// reusable SecureChannel); deterministic simulation and linearizability checking (sim/,
// linearizability/), reusable by other packages.

// Edge: binary codec
export * from './codec/index.js'
// Pure consensus core
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
// Edge: replica driver
export {
  LeadershipLostError,
  Replica,
  type ReplicaEvents,
  type ReplicaOptions,
  ReplicaStoppedError,
} from './replica/index.js'
// Deterministic simulation and test infrastructure
export { parseScript, printScript } from './sim/datadriven.js'
export { describeEntry, describeMessage, describeReady } from './sim/describe.js'
export { InteractionEnv } from './sim/interaction.js'
export { SafetyChecker, SafetyViolation } from './sim/invariants.js'
export { Rng } from './sim/rng.js'
export {
  defaultSimConfig,
  emptySimStats,
  runSimulation,
  type SimConfig,
  type SimResult,
  type SimStats,
} from './sim/simulation.js'
export { MemoryStorage } from './sim/storage.js'
// Edge: authenticated TCP transport, and its SecureChannel (PSK-authenticated framed channel)
export * from './transport/index.js'
// Edge: durable WAL
export * from './wal/index.js'
