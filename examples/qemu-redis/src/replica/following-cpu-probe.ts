// The idle monitor's CPU probe for a QemuVm: the QEMU process changes when a backup loads device
// state into a fresh standby (and that backup may later become primary), so follow the current
// pid. A pid change gives one "error" sample (no interval across two processes).
import { type CpuProbe, type CpuSample, ProcessCpuProbe } from '@plover/idle-monitor'

export class FollowingCpuProbe implements CpuProbe {
  private probe: ProcessCpuProbe
  private pid: number

  constructor(private readonly currentPid: () => number) {
    this.pid = currentPid()
    this.probe = new ProcessCpuProbe(this.pid)
  }

  get resolutionNs(): number {
    return this.probe.resolutionNs
  }

  sample(): CpuSample {
    const pid = this.currentPid()
    if (pid !== this.pid) {
      this.probe.close()
      this.pid = pid
      this.probe = new ProcessCpuProbe(pid)
      this.probe.sample()
      return { state: 'error', error: new Error(`QEMU process changed to ${pid}`) }
    }
    return this.probe.sample()
  }

  close(): void {
    this.probe.close()
  }
}
