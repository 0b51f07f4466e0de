import type { ProbeFailure } from './probe-sample.js'

/** Cumulative block-I/O counters of a VM. */
export interface IoCounters {
  readonly rdBytes: number
  readonly wrBytes: number
  readonly rdOps: number
  readonly wrOps: number
}

export type IoSample = ({ readonly state: 'ok' } & IoCounters) | ProbeFailure

/**
 * Disk activity of the VM. May be asynchronous (QMP `query-blockstats` is a socket round trip);
 * the monitor never overlaps two samples.
 */
export interface BlockIoProbe {
  sample(): IoSample | Promise<IoSample>
  close?(): void
}
