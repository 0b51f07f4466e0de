export * from './hashing/index.js'
export * from './input/frame-batch.js'
export * from './input/input-batcher.js'
export * from './input/input-delivery.js'
export * from './link/errors.js'
export * from './link/link.js'
export * from './link/memory-link.js'
export {
  decodeSyncIdentity,
  encodeSyncIdentity,
  SyncLinks,
  type SyncLinksLogger,
  type SyncLinksOptions,
} from './link/sync-links.js'
export {
  type ConnectOptions,
  connectSyncLink,
  SyncLinkServer,
  type TcpLinkOptions,
  TcpSyncLink,
} from './link/tcp-link.js'
export {
  type ConsensusLogReplica,
  ConsensusOrderedLog,
} from './log/consensus-log.js'
export * from './log/input-history.js'
export * from './log/log-compaction.js'
export * from './log/memory-log.js'
export * from './log/ordered-log.js'
export * from './metrics/sync-report.js'
export * from './metrics/vmsync-metrics.js'
export * from './output/output-guard.js'
export * from './protocol/backup-sync.js'
export { SyncChannel, type SyncChannelOptions } from './protocol/channel.js'
export { decodeSyncMessage, encodeSyncMessage } from './protocol/codec.js'
export * from './protocol/errors.js'
export * from './protocol/marker.js'
export * from './protocol/messages.js'
export * from './protocol/precopy-sender.js'
export * from './protocol/primary-sync.js'
export type { PageHashing, SyncSideOptions } from './protocol/sync-options.js'
export * from './protocol/vm-replica.js'
export * from './runtime/backup-progress.js'
export * from './runtime/learner-promotion.js'
export * from './runtime/membership-request.js'
export * from './runtime/operator-endpoint.js'
export * from './runtime/primacy-gate.js'
export * from './runtime/primacy-handover.js'
export * from './runtime/sync-scheduler.js'
export * from './simulated/index.js'
export {
  type SimulatedCpuSample,
  SimulatedVmCpuProbe,
  SimulatedVmGoneError,
} from './simulated/simulated-cpu-probe.js'
export * from './vm/replicated-vm.js'
