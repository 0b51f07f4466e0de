// The idle monitor's probes on a SimulatedVm, which runs inside this process (no PID): its
// guest-CPU clock and the primary's output guard. Shows that the probe interfaces are not
// tied to /proc.
import type { CpuProbe, CpuSample, OutputSource } from '@plover/idle-monitor'
import type { OutputGuard, SimulatedVm } from '@plover/vmsync'

export function simulatedCpuProbe(vm: SimulatedVm): CpuProbe {
  return {
    resolutionNs: 1,
    sample(): CpuSample {
      return { state: 'ok', cpuNs: vm.cpuTimeMs() * 1e6, threads: 1 }
    },
    close() {},
  }
}

export function guardOutputSource(guard: OutputGuard): OutputSource {
  return {
    heldBytes: () => guard.stats().heldBytes,
    oldestHeldAgeMs: () => guard.stats().oldestHeldAgeMs,
    framesOut: () => guard.stats().emittedFrames,
  }
}
