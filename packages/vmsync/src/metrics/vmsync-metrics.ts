// Prometheus view of vmsync: per-sync histograms and counters plus output-guard gauges, on an
// own Registry (never the global one, so several replicas in one process do not collide).
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { OutputGuard } from '../output/output-guard.js'
import { SyncMode } from '../protocol/messages.js'
import type { SyncFailure, SyncReport } from './sync-report.js'

const PAGE_BUCKETS = [0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000]
const MS_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 5_000]
const BYTE_BUCKETS = [0, 4_096, 65_536, 1 << 20, 16 << 20, 256 << 20]
const PCT_BUCKETS = [10, 25, 50, 75, 90, 95, 99, 100]

export class VmsyncMetrics {
  readonly registry: Registry
  private readonly syncs: Counter<'side' | 'mode'>
  private readonly failures: Counter<'side'>
  private readonly dirty: Histogram<'side'>
  private readonly identical: Histogram<'side'>
  private readonly identicalPct: Histogram<'side'>
  private readonly divergent: Histogram<'side'>
  private readonly bytes: Histogram<'side'>
  private readonly pause: Histogram<'side'>
  private readonly total: Histogram<'side'>
  private readonly step: Histogram<'side' | 'step'>
  private readonly hashMBps: Gauge<'side'>
  private readonly bytesTotal: Counter<'side'>
  private readonly precopied: Counter<'side'>
  private readonly prefix: string

  constructor(opts: { registry?: Registry; prefix?: string; labels?: Record<string, string> } = {}) {
    this.registry = opts.registry ?? new Registry()
    if (opts.labels) this.registry.setDefaultLabels(opts.labels)
    const p = opts.prefix ?? 'plover_vmsync_'
    this.prefix = p
    const registers = [this.registry]
    this.syncs = new Counter({
      name: `${p}syncs_total`,
      help: 'Completed syncs',
      labelNames: ['side', 'mode'],
      registers,
    })
    this.failures = new Counter({
      name: `${p}sync_failures_total`,
      help: 'Aborted syncs',
      labelNames: ['side'],
      registers,
    })
    const h = (name: string, help: string, buckets: number[]) =>
      new Histogram({ name: `${p}${name}`, help, labelNames: ['side'], buckets, registers })
    this.dirty = h('dirty_pages', 'Dirty pages on this side per sync', PAGE_BUCKETS)
    this.identical = h('identical_pages', 'Union pages with equal hashes per sync', PAGE_BUCKETS)
    this.identicalPct = h('identical_pages_percent', 'Identical share of the union per sync', PCT_BUCKETS)
    this.divergent = h('divergent_pages', 'Pages transferred per sync', PAGE_BUCKETS)
    this.bytes = h('bytes_sent', 'Sync-link bytes sent per sync', BYTE_BUCKETS)
    this.pause = h('pause_ms', 'VM pause per sync (ms)', MS_BUCKETS)
    this.total = h('sync_ms', 'Marker to resume per sync (ms)', MS_BUCKETS)
    this.step = new Histogram({
      name: `${p}sync_step_ms`,
      help: 'Time per sync protocol step (ms), e.g. step="collect" is the dirty scan',
      labelNames: ['side', 'step'],
      buckets: MS_BUCKETS,
      registers,
    })
    this.hashMBps = new Gauge({
      name: `${p}hash_throughput_mbps`,
      help: 'Page hashing throughput of the last sync (MB/s)',
      labelNames: ['side'],
      registers,
    })
    this.bytesTotal = new Counter({
      name: `${p}bytes_sent_total`,
      help: 'Sync-link bytes sent',
      labelNames: ['side'],
      registers,
    })
    this.precopied = new Counter({
      name: `${p}precopied_pages_total`,
      help: 'Pages sent by pre-copy (while the primary ran) before full syncs',
      labelNames: ['side'],
      registers,
    })
  }

  observeSync(r: SyncReport): void {
    const side = { side: r.side }
    this.syncs.inc({ side: r.side, mode: SyncMode[r.mode] })
    this.dirty.observe(side, r.dirtyPages)
    this.identical.observe(side, r.identicalPages)
    if (r.mode === SyncMode.Vsmr) this.identicalPct.observe(side, r.identicalPct)
    this.divergent.observe(side, r.divergentPages)
    this.bytes.observe(side, r.bytesSent)
    this.bytesTotal.inc(side, r.bytesSent)
    if (r.precopiedPages) this.precopied.inc(side, r.precopiedPages)
    this.pause.observe(side, r.pauseMs)
    this.total.observe(side, r.totalMs)
    if (r.hashedBytes > 0) this.hashMBps.set(side, r.hashMBps)
    for (const [step, ms] of Object.entries(r.stepsMs)) this.step.observe({ side: r.side, step }, ms)
  }

  observeFailure(f: SyncFailure): void {
    this.failures.inc({ side: f.side })
  }

  /** Output-guard gauges, read at scrape time (the idle monitor reads the same stats()). */
  trackOutputGuard(guard: OutputGuard): void {
    const p = `${this.prefix}output_`
    const registers = [this.registry]
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name: `${p}${name}`,
        help,
        registers,
        collect() {
          this.set(read())
        },
      })
    gauge('held_frames', 'Outbound frames held until their sync commits', () => guard.stats().heldFrames)
    gauge('held_bytes', 'Outbound bytes held until their sync commits', () => guard.stats().heldBytes)
    let droppedSeen = 0
    new Counter({
      name: `${p}dropped_frames_total`,
      help: 'Outbound frames dropped because maxHeldBytes were already held (a stalled sync)',
      registers,
      collect() {
        const dropped = guard.stats().droppedFrames
        if (dropped > droppedSeen) this.inc(dropped - droppedSeen)
        droppedSeen = dropped
      },
    })
    gauge('oldest_held_age_ms', 'Age of the oldest held frame (ms)', () => guard.stats().oldestHeldAgeMs)
    gauge('unprotected', '1 while the primary releases outputs without a synced backup', () =>
      guard.outputRole === 'primary' && !guard.isProtected ? 1 : 0,
    )
  }

  /** Observes every sync of a VmReplica (or a PrimarySync/BackupSync) and its output guard. */
  watch(source: {
    on(event: 'sync-completed', fn: (r: SyncReport) => void): unknown
    on(event: 'sync-failed', fn: (f: SyncFailure) => void): unknown
    readonly guard?: OutputGuard
  }): void {
    source.on('sync-completed', (r) => this.observeSync(r))
    source.on('sync-failed', (f) => this.observeFailure(f))
    if (source.guard) this.trackOutputGuard(source.guard)
  }

  metrics(): Promise<string> {
    return this.registry.metrics()
  }
}
