import type { BlockIoProbe, IoCounters, IoSample } from './block-io-probe.js'
import { asError } from './probe-sample.js'

/**
 * Block I/O of a VM with disks, from an injected query — a QEMU runtime backs it with QMP
 * `query-blockstats` (see {@link sumQmpBlockstats}). A rejected query is reported as
 * `{ state: 'error' }`: only the runtime knows whether QEMU is gone; the CPU probe reports that.
 */
export class BlockstatsProbe implements BlockIoProbe {
  constructor(private readonly query: () => Promise<IoCounters>) {}

  async sample(): Promise<IoSample> {
    try {
      const c = await this.query()
      return { state: 'ok', rdBytes: c.rdBytes, wrBytes: c.wrBytes, rdOps: c.rdOps, wrOps: c.wrOps }
    } catch (err) {
      return { state: 'error', error: asError(err) }
    }
  }
}

/** The fields this package reads from one entry of QMP `query-blockstats`' return value. */
export interface QmpBlockstatsEntry {
  readonly stats: {
    readonly rd_bytes: number
    readonly wr_bytes: number
    readonly rd_operations: number
    readonly wr_operations: number
  }
}

/** Sums QMP `query-blockstats` over all devices into one set of counters. */
export function sumQmpBlockstats(entries: readonly QmpBlockstatsEntry[]): IoCounters {
  let rdBytes = 0
  let wrBytes = 0
  let rdOps = 0
  let wrOps = 0
  for (const e of entries) {
    rdBytes += e.stats.rd_bytes
    wrBytes += e.stats.wr_bytes
    rdOps += e.stats.rd_operations
    wrOps += e.stats.wr_operations
  }
  return { rdBytes, wrBytes, rdOps, wrOps }
}
