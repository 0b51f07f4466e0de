import type { ProbeFailure } from './probe-sample.js'

/** A reading of a process's CPU clock. */
export type CpuSample =
  | {
      readonly state: 'ok'
      /** CPU time of all threads since the probe's first reading, in ns (monotonic, starts at 0). */
      readonly cpuNs: number
      /**
       * Time threads spent runnable but waiting for a CPU since the first reading, ns; undefined
       * when the source cannot tell (tick-based stat). WHY: on a contended host a busy VM that is
       * descheduled does not run, and would look idle by its CPU time alone.
       */
      readonly waitNs?: number
      /**
       * Threads in state R (running or waiting for a CPU) at this instant; undefined when the
       * source cannot tell. WHY: the kernel adds a thread's runqueue wait to schedstat only when
       * it finally runs, so a busy VM starved for 50 ms shows neither run nor wait time until
       * then — but it shows as runnable.
       */
      readonly runnable?: number
      /** Threads alive at this reading. */
      readonly threads: number
    }
  | ProbeFailure

/**
 * The CPU clock the policy watches. Synchronous on purpose: /proc reads take microseconds and an
 * async round-trip through libuv's thread pool would cost more than the read itself.
 */
export interface CpuProbe {
  /** Smallest CPU-time step the probe can see, in ns (10 ms for tick-based /proc/PID/stat). */
  readonly resolutionNs: number
  sample(): CpuSample
  close(): void
}
