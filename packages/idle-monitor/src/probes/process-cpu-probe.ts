import { readdirSync } from 'node:fs'
import { LINUX_CLK_TCK } from './clock-ticks.js'
import type { CpuProbe, CpuSample } from './cpu-probe.js'
import { asError } from './probe-sample.js'
import { ProcFile } from './proc-file.js'
import {
  isDeadState,
  parseProcStat,
  parseSchedstat,
  parseSchedstatBytes,
  parseStatStateBytes,
  type Schedstat,
} from './proc-parse.js'
import { isGoneErrno, ProcessGoneError } from './process-gone-error.js'
import { schedstatAvailable } from './schedstat-available.js'

/**
 * - `schedstat`: sum over /proc/PID/task/*\/schedstat (ns, the scheduler's own runtime clock).
 * - `stat`: utime+stime of /proc/PID/stat in clock ticks (10 ms steps), which the kernel already
 *   sums over all threads, including exited ones.
 * - `auto`: schedstat when the kernel exposes it, else stat.
 */
export type CpuSource = 'schedstat' | 'stat' | 'auto'

export interface ProcessCpuProbeOptions {
  /** Default `auto`. */
  readonly source?: CpuSource
  /** USER_HZ; default {@link LINUX_CLK_TCK} (100). */
  readonly clockTicksPerSecond?: number
  /** schedstat mode re-lists /proc/PID/task at least this often, in ms, to see new threads. Default 500. */
  readonly relistThreadsEveryMs?: number
}

export interface ThreadCpu {
  readonly tid: number
  /** e.g. `CPU 0/TCG` for a QEMU vCPU thread. */
  readonly comm: string
  readonly cpuNs: number
}

interface TrackedThread {
  readonly schedstat: ProcFile
  readonly stat: ProcFile
  last: Schedstat
}

/**
 * CPU time of one process and all its threads, from /proc. Never throws from `sample()`: an
 * exited process yields `{ state: 'gone' }` (also for a zombie that its parent has not reaped).
 *
 * WHY schedstat by default: at a 10 ms sampling period, tick-based utime+stime moves in steps of a
 * whole sampling interval (rate 0 % or 100 %), which cannot tell a 3 %-busy idle guest from a
 * loaded one without long windows. schedstat has ns resolution and costs ~1 µs per thread.
 */
export class ProcessCpuProbe implements CpuProbe {
  readonly source: 'schedstat' | 'stat'
  readonly resolutionNs: number
  private readonly buf = Buffer.alloc(4096)
  private readonly stat: ProcFile
  private readonly ticksToNs: number
  private readonly relistEveryMs: number
  private readonly threadsByTid = new Map<number, TrackedThread>()
  private lastListAtMs = Number.NEGATIVE_INFINITY
  private startTimeTicks: number | undefined
  private firstTicks: number | undefined
  private accumulatedNs = 0
  private accumulatedWaitNs = 0
  private gone: ProcessGoneError | undefined

  constructor(
    readonly pid: number,
    opts: ProcessCpuProbeOptions = {},
  ) {
    const wanted = opts.source ?? 'auto'
    this.source = wanted === 'auto' ? (schedstatAvailable() ? 'schedstat' : 'stat') : wanted
    this.ticksToNs = 1e9 / (opts.clockTicksPerSecond ?? LINUX_CLK_TCK)
    this.resolutionNs = this.source === 'stat' ? this.ticksToNs : 1
    this.relistEveryMs = opts.relistThreadsEveryMs ?? 500
    this.stat = new ProcFile(`/proc/${pid}/stat`, this.buf)
  }

  sample(): CpuSample {
    if (this.gone) return { state: 'gone', error: this.gone }
    try {
      const st = parseProcStat(this.stat.read())
      if (isDeadState(st.state)) return this.markGone(`state ${st.state} (exited, not yet reaped)`)
      if (this.startTimeTicks === undefined) this.startTimeTicks = st.startTimeTicks
      else if (st.startTimeTicks !== this.startTimeTicks)
        return this.markGone('pid reused by another process')
      if (this.source === 'stat') {
        const ticks = st.utimeTicks + st.stimeTicks
        this.firstTicks ??= ticks
        return { state: 'ok', cpuNs: (ticks - this.firstTicks) * this.ticksToNs, threads: st.numThreads }
      }
      return this.sampleSchedstat(st.numThreads)
    } catch (err) {
      if (isGoneErrno(err)) return this.markGone((err as Error).message)
      return { state: 'error', error: asError(err) }
    }
  }

  /** Per-thread breakdown from /proc/PID/task/*\/stat (ticks), for diagnostics — not the hot path. */
  threads(): ThreadCpu[] | { state: 'gone'; error: ProcessGoneError } {
    try {
      const out: ThreadCpu[] = []
      for (const name of readdirSync(`/proc/${this.pid}/task`)) {
        const f = new ProcFile(`/proc/${this.pid}/task/${name}/stat`, this.buf)
        try {
          const st = parseProcStat(f.read())
          out.push({
            tid: Number(name),
            comm: st.comm,
            cpuNs: (st.utimeTicks + st.stimeTicks) * this.ticksToNs,
          })
        } catch (err) {
          if (!isGoneErrno(err)) throw err // a thread that just exited is simply skipped
        } finally {
          f.close()
        }
      }
      return out
    } catch (err) {
      if (isGoneErrno(err)) return { state: 'gone', error: this.markGone((err as Error).message).error }
      throw err
    }
  }

  close(): void {
    this.stat.close()
    for (const t of this.threadsByTid.values()) closeThread(t)
    this.threadsByTid.clear()
  }

  private sampleSchedstat(numThreads: number): CpuSample {
    const first = this.lastListAtMs === Number.NEGATIVE_INFINITY
    const now = performance.now()
    if (numThreads !== this.threadsByTid.size || now - this.lastListAtMs >= this.relistEveryMs) {
      this.relist(first)
      this.lastListAtMs = now
    }
    let runnable = 0
    for (const [tid, t] of this.threadsByTid) {
      let s: Schedstat
      try {
        s = parseSchedstatBytes(this.buf, t.schedstat.readBytes())
        // pid (≤ 7) + comm (≤ 16 + parens) + state fits in 64 bytes.
        if (parseStatStateBytes(this.buf, t.stat.readBytes(64)) === 'R') runnable++
      } catch (err) {
        if (!isGoneErrno(err)) throw err
        // The thread exited: its runtime since the last reading is lost (≤ one period).
        closeThread(t)
        this.threadsByTid.delete(tid)
        continue
      }
      if (s.runNs > t.last.runNs) this.accumulatedNs += s.runNs - t.last.runNs
      if (s.waitNs > t.last.waitNs) this.accumulatedWaitNs += s.waitNs - t.last.waitNs
      t.last = s
    }
    if (this.threadsByTid.size === 0) return this.markGone('no threads left')
    return {
      state: 'ok',
      cpuNs: this.accumulatedNs,
      waitNs: this.accumulatedWaitNs,
      runnable,
      threads: this.threadsByTid.size,
    }
  }

  /** On the first listing, current runtimes are the zero point; a thread found later counts in full. */
  private relist(first: boolean): void {
    const alive = new Set<number>()
    for (const name of readdirSync(`/proc/${this.pid}/task`)) {
      const tid = Number(name)
      alive.add(tid)
      if (this.threadsByTid.has(tid)) continue
      const dir = `/proc/${this.pid}/task/${tid}`
      const t: TrackedThread = {
        schedstat: new ProcFile(`${dir}/schedstat`, this.buf),
        stat: new ProcFile(`${dir}/stat`, this.buf),
        last: { runNs: 0, waitNs: 0 },
      }
      if (first) {
        try {
          t.last = parseSchedstat(t.schedstat.read())
        } catch (err) {
          closeThread(t)
          if (isGoneErrno(err)) continue
          throw err
        }
      }
      this.threadsByTid.set(tid, t)
    }
    for (const [tid, t] of this.threadsByTid) {
      if (alive.has(tid)) continue
      closeThread(t)
      this.threadsByTid.delete(tid)
    }
  }

  private markGone(detail: string): { state: 'gone'; error: ProcessGoneError } {
    this.gone ??= new ProcessGoneError(this.pid, detail)
    this.close()
    return { state: 'gone', error: this.gone }
  }
}

function closeThread(t: TrackedThread): void {
  t.schedstat.close()
  t.stat.close()
}
