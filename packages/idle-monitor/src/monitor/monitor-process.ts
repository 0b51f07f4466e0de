import type { BlockIoProbe } from '../probes/block-io-probe.js'
import { ProcIoProbe } from '../probes/proc-io-probe.js'
import { ProcessCpuProbe, type ProcessCpuProbeOptions } from '../probes/process-cpu-probe.js'
import { IdleMonitor, type IdleMonitorOptions } from './idle-monitor.js'

export interface MonitorProcessOptions extends Omit<IdleMonitorOptions, 'cpu' | 'io'> {
  readonly cpuProbe?: ProcessCpuProbeOptions
  /** `proc` (default): /proc/PID/io; a probe (e.g. a BlockstatsProbe over QMP); `false`: no disk signal. */
  readonly io?: 'proc' | BlockIoProbe | false
}

/** An {@link IdleMonitor} on a local process (a QEMU VM, or any child in tests). Not started. */
export function monitorProcess(pid: number, opts: MonitorProcessOptions = {}): IdleMonitor {
  const { cpuProbe, io = 'proc', ...rest } = opts
  return new IdleMonitor({
    ...rest,
    cpu: new ProcessCpuProbe(pid, cpuProbe),
    io: io === 'proc' ? new ProcIoProbe(pid) : io === false ? undefined : io,
  })
}
