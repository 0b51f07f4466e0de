// The idle monitor's CPU probe for the simulated VM: its CPU clock is the busy time of the VM's
// own CPU loop (SimulatedVm.cpuTimeMs), the analogue of a QEMU process's CPU clock.
import { type CpuProbe, type CpuSample, ProcessGoneError } from '@plover/idle-monitor'
import type { SimulatedVm } from '@plover/vmsync'

export class SimulatedVmCpuProbe implements CpuProbe {
  readonly resolutionNs = 1_000
  private readonly startMs: number

  constructor(private readonly vm: SimulatedVm) {
    this.startMs = vm.cpuTimeMs()
  }

  sample(): CpuSample {
    if (this.vm.runState === 'exited') {
      return { state: 'gone', error: new ProcessGoneError(process.pid, 'simulated VM exited') }
    }
    return { state: 'ok', cpuNs: (this.vm.cpuTimeMs() - this.startMs) * 1e6, threads: 1 }
  }

  close(): void {}
}
