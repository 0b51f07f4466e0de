import type { BlockIoProbe, IoSample } from './block-io-probe.js'
import { asError } from './probe-sample.js'
import { ProcFile } from './proc-file.js'
import { parseProcIo } from './proc-parse.js'
import { isGoneErrno, ProcessGoneError } from './process-gone-error.js'

/**
 * Block I/O of a process from /proc/PID/io, for a VM without disks (or any process).
 *
 * `rdBytes`/`wrBytes` are read_bytes/write_bytes — bytes that reached (or were dirtied for) the
 * storage layer — and `rdOps`/`wrOps` are syscr/syscw. WHY the policy looks at bytes only by
 * default: syscr/syscw count every read()/write() syscall, and QEMU's event loop reads eventfds
 * and sockets all the time, so the op counts are never quiet even with no disk at all.
 * Needs the same uid as the target (or CAP_SYS_PTRACE).
 */
export class ProcIoProbe implements BlockIoProbe {
  private readonly file: ProcFile
  private gone: ProcessGoneError | undefined

  constructor(readonly pid: number) {
    this.file = new ProcFile(`/proc/${pid}/io`, Buffer.alloc(1024))
  }

  sample(): IoSample {
    if (this.gone) return { state: 'gone', error: this.gone }
    try {
      const io = parseProcIo(this.file.read())
      return { state: 'ok', rdBytes: io.readBytes, wrBytes: io.writeBytes, rdOps: io.syscr, wrOps: io.syscw }
    } catch (err) {
      if (isGoneErrno(err)) {
        this.gone = new ProcessGoneError(this.pid, (err as Error).message)
        this.file.close()
        return { state: 'gone', error: this.gone }
      }
      return { state: 'error', error: asError(err) }
    }
  }

  close(): void {
    this.file.close()
  }
}
