// A CPU probe for SimulatedVm in the shape of @plover/idle-monitor's CpuProbe: its CPU clock is
// the busy time of the VM's own CPU loop (SimulatedVm.cpuTimeMs), the analogue of a QEMU
// process's CPU clock. Structurally typed on purpose: vmsync does not depend on idle-monitor, yet
// `new IdleMonitor({ cpu: new SimulatedVmCpuProbe(vm), … })` type-checks (the types below mirror
// idle-monitor's CpuSample, and the error has ProcessGoneError's shape).
import type { SimulatedVm } from './simulated-vm.js'

/** Same shape as @plover/idle-monitor's ProcessGoneError. */
export class SimulatedVmGoneError extends Error {
  override readonly name = 'ProcessGoneError'
  constructor(
    readonly pid: number,
    readonly detail: string,
  ) {
    super(`process ${pid} is gone: ${detail}`)
  }
}

/** A subset of idle-monitor's CpuSample (this probe never reports wait time or runnable). */
export type SimulatedCpuSample =
  | { readonly state: 'ok'; readonly cpuNs: number; readonly threads: number }
  | { readonly state: 'gone'; readonly error: SimulatedVmGoneError }

export class SimulatedVmCpuProbe {
  readonly resolutionNs = 1_000
  private readonly startMs: number

  constructor(private readonly vm: SimulatedVm) {
    this.startMs = vm.cpuTimeMs()
  }

  sample(): SimulatedCpuSample {
    if (this.vm.runState === 'exited') {
      return { state: 'gone', error: new SimulatedVmGoneError(process.pid, 'simulated VM exited') }
    }
    return { state: 'ok', cpuNs: (this.vm.cpuTimeMs() - this.startMs) * 1e6, threads: 1 }
  }

  close(): void {}
}
