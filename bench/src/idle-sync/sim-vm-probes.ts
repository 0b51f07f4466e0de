// The idle monitor's CPU probe on a SimulatedVm, which runs inside this process (no PID): its
// guest-CPU clock. Shows that the probe interface is not tied to /proc.
import type { CpuProbe, CpuSample } from '@plover/idle-monitor'
import type { SimulatedVm } from '@plover/vmsync'

export function simulatedCpuProbe(vm: SimulatedVm): CpuProbe {
  return {
    resolutionNs: 1,
    sample(): CpuSample {
      return { state: 'ok', cpuNs: vm.cpuTimeMs() * 1e6, threads: 1 }
    },
    close() {},
  }
}
