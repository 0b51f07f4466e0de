// @plover/idle-monitor: decides when a replicated VM should sync.
export { type CalibrationConfig, Calibrator, DEFAULT_CALIBRATION } from './calibration/calibrator.js'
export {
  baselineFromRates,
  type IdleBaseline,
  idleCeilingCores,
  runnableMeansBusy,
} from './calibration/idle-baseline.js'
export { percentile } from './calibration/percentile.js'
export {
  DEFAULT_PERIOD_MS,
  IdleMonitor,
  type IdleMonitorEvents,
  type IdleMonitorOptions,
  type MonitorSampleEvent,
  type MonitorStats,
} from './monitor/idle-monitor.js'
export { type MonitorProcessOptions, monitorProcess } from './monitor/monitor-process.js'
export { type IntervalSample, intervalBetween, type Observation } from './policy/observation.js'
export { DEFAULT_POLICY, type PolicyConfig, resolvePolicyConfig } from './policy/policy-config.js'
export { type Classification, type Decision, type PolicyPhase, SyncPolicy } from './policy/sync-policy.js'
export type { SyncDue, SyncReason } from './policy/sync-reason.js'
export type { BlockIoProbe, IoCounters, IoSample } from './probes/block-io-probe.js'
export { BlockstatsProbe, type QmpBlockstatsEntry, sumQmpBlockstats } from './probes/blockstats-probe.js'
export { LINUX_CLK_TCK } from './probes/clock-ticks.js'
export type { CpuProbe, CpuSample } from './probes/cpu-probe.js'
export { type GuardStatsLike, outputSourceFromGuard } from './probes/guard-stats-source.js'
export {
  type OutputCounters,
  type OutputProbe,
  type OutputSample,
  type OutputSource,
  OutputSourceProbe,
} from './probes/output-probe.js'
export type { ProbeFailure } from './probes/probe-sample.js'
export { ProcIoProbe } from './probes/proc-io-probe.js'
export {
  type ProcIo,
  type ProcStat,
  parseProcIo,
  parseProcStat,
  parseSchedstat,
  parseStatState,
  type Schedstat,
} from './probes/proc-parse.js'
export {
  type CpuSource,
  ProcessCpuProbe,
  type ProcessCpuProbeOptions,
  type ThreadCpu,
} from './probes/process-cpu-probe.js'
export { ProcessGoneError } from './probes/process-gone-error.js'
export { schedstatAvailable } from './probes/schedstat-available.js'
