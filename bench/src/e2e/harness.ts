// Runs one configuration of the QEMU redis setup through examples/qemu-redis's orchestrator
// (src/demo/run.ts): an unreplicated guest (direct on its tap, or every frame relayed through
// Node), or Plover (two QEMU guests + witness, consensus-ordered inputs, held outputs, syncs) in
// VSMR or Remus mode, synced on idle or at a fixed interval, no failover. Same bridge/tap/client
// namespace, same guest image and RAM size, same redis-benchmark command line in every case.
//
// The orchestrator lives outside this package (examples/**, not a dependency of @plover/bench), so
// it is imported by path at run time and typed here by the few fields used.
import { loadavg } from 'node:os'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { SyncReportFields } from '../../../examples/qemu-redis/src/replica/config.js'
import { CPU_CATEGORIES, CpuAccounting, type CpuCategory, type CpuUse } from './cpu-accounting.js'

const DEMO_RUN = fileURLToPath(new URL('../../../examples/qemu-redis/src/demo/run.ts', import.meta.url))

interface BenchRow {
  readonly test: 'SET' | 'GET'
  readonly at: number
  readonly rps: number
  readonly avgMs: number
  readonly p50Ms: number
  readonly p95Ms: number
  readonly p99Ms: number
  readonly maxMs: number
}
interface RedisCounts {
  readonly at: number
  readonly set: number
  readonly get: number
}
interface StatusVm {
  readonly syncs: number
  readonly fullSyncs: number
  readonly syncFailures: number
  readonly inputFrames: number
  readonly inputBytes?: number
}
interface LoadResult {
  readonly startedAt: number
  readonly endedAt: number
  readonly rows: readonly BenchRow[]
  readonly served?: { readonly start: RedisCounts; readonly end: RedisCounts }
  readonly primaryAtStart?: { readonly vm?: StatusVm }
  readonly primaryAtEnd?: { readonly vm?: StatusVm }
}
export type SyncReportMsg = SyncReportFields
interface DemoLike {
  run(): Promise<{ readonly load?: LoadResult; readonly fullSyncMs: number; readonly notDone: string[] }>
  runUnreplicated(o: { path: 'direct' | 'relay' }): Promise<LoadResult>
  abort(reason: string): void
  cleanup(): Promise<void>
}
interface DemoModule {
  Demo: new (o: Record<string, unknown>) => DemoLike
}

export type RunKind = 'unreplicated-direct' | 'unreplicated-relay' | 'unreplicated-pair' | 'plover'

export interface RunSpec {
  readonly label: string
  readonly kind: RunKind
  readonly syncMode?: 'vsmr' | 'remus'
  /** How the voters' hash workers read guest RAM (default 'auto'). */
  readonly hashFileReads?: 'auto' | 'mmap' | 'pread'
  /** Device-state form the voters send (default 'snapshot'). */
  readonly deviceState?: 'snapshot' | 'migration'
  /** Fixed sync interval (ms); unset = the idle monitor. */
  readonly fixedSyncIntervalMs?: number
  /** Idle-monitor policy overrides (minIntervalMs, maxHeldAgeMs, periodMs). */
  readonly syncPolicy?: {
    readonly minIntervalMs?: number
    readonly maxHeldAgeMs?: number
    readonly periodMs?: number
    readonly outputSettledSamples?: number
    readonly quietWindowMs?: number
    readonly quietMaxMs?: number
  }
  readonly loadS: number
  readonly memoryMiB: number
  readonly clients: number
  readonly iterationRequests: number
}

export interface SyncStats {
  readonly syncs: number
  readonly syncsPerS: number
  readonly dirtyPagesPerSync: number
  readonly unionPagesPerSync: number
  readonly sentPagesPerSync: number
  /** Sum of identical pages / sum of union pages over the window's syncs. */
  readonly identicalPct: number
  readonly bytesPerSync: number
  readonly deviceStateBytesPerSync: number
  /** Device-state bytes on the link per sync (a delta after the first, except in Remus mode). */
  readonly deviceStateSentBytesPerSync: number
  readonly pauseMeanMs: number
  readonly pauseP50Ms: number
  readonly pauseP95Ms: number
  readonly totalP50Ms: number
  readonly hashP50Ms: number
  /** The primary's median time per protocol step (SyncReport.stepsMs), in step order. */
  readonly stepsP50Ms: Readonly<Record<string, number>>
  /** The backup's median time per protocol step, for the same syncs. */
  readonly backupStepsP50Ms: Readonly<Record<string, number>>
  /** Sync link payload both ways, bytes/s over the load window. */
  readonly linkBytesPerS: number
}

export interface RunOutcome {
  readonly spec: RunSpec
  readonly ok: boolean
  readonly error?: string
  readonly loadavgBefore: number
  readonly seconds?: number
  /** SET+GET calls the guest served per second over the window (INFO commandstats). */
  readonly servedPerS?: number
  readonly setPerS?: number
  readonly getPerS?: number
  /** Completed redis-benchmark iterations (CSV rows) and their latency (ms). */
  readonly iterations?: number
  readonly p50MsMedian?: number
  readonly p99MsMedian?: number
  readonly p99MsMax?: number
  /** Input frame bytes the primary put into the consensus log, per second. */
  readonly logBytesPerS?: number
  readonly sync?: SyncStats
  /** unreplicated-pair: what each of the two guests served (servedPerS is the smaller). */
  readonly pairServedPerS?: readonly number[]
  readonly fullSyncMs?: number
  /** The primary's first full sync (the backup joining), from its sync report. */
  readonly fullSync?: FullSyncStats
  readonly notDone?: string[]
  /** Where the host's CPU went over the load window, per request and per sync. */
  readonly cpu?: CpuUse & {
    /** CPU per served request, ms, by category. */
    readonly msPerRequest: Readonly<Record<CpuCategory, number>>
    /** The replica processes' CPU per sync, ms (Plover only): an upper bound of a sync's cost. */
    readonly replicasMsPerSync?: number
  }
}

export interface FullSyncStats {
  /** 'FullCompared' (hash every page, send divergent ones) or 'Full' (send every page). */
  readonly mode: string
  readonly pauseMs: number
  readonly totalMs: number
  readonly pages: number
  readonly sentPages: number
  readonly bytesSent: number
  /** Pages pre-copied while the primary ran, before this full sync (0: none). */
  readonly precopiedPages: number
  readonly stepsMs: Readonly<Record<string, number>>
}

let current: DemoLike | undefined
let signalled = false
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (signalled) return
    signalled = true
    process.stdout.write(`\n${sig}: stopping and cleaning up…\n`)
    current?.abort(sig)
    void (current?.cleanup() ?? Promise.resolve()).then(() => process.exit(130))
  })
}

export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]
}
const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0)
const mean = (xs: readonly number[]) => (xs.length ? sum(xs) / xs.length : Number.NaN)

function stepMedians(steps: readonly Readonly<Record<string, number>>[]): Record<string, number> {
  const names = [...new Set(steps.flatMap((s) => Object.keys(s)))]
  return Object.fromEntries(
    names.map((n) => [
      n,
      quantile(
        steps.map((s) => s[n] ?? 0),
        0.5,
      ),
    ]),
  )
}

export function syncStats(all: readonly SyncReportMsg[], seconds: number): SyncStats | undefined {
  const reports = all.filter((r) => r.side === 'primary')
  if (reports.length === 0) return undefined
  const union = sum(reports.map((r) => r.unionPages))
  return {
    syncs: reports.length,
    syncsPerS: reports.length / seconds,
    dirtyPagesPerSync: mean(reports.map((r) => r.dirtyPages)),
    unionPagesPerSync: union / reports.length,
    sentPagesPerSync: mean(reports.map((r) => r.divergentPages)),
    identicalPct: union === 0 ? 0 : (sum(reports.map((r) => r.identicalPages)) / union) * 100,
    bytesPerSync: mean(reports.map((r) => r.bytesSent + r.bytesReceived)),
    deviceStateBytesPerSync: mean(reports.map((r) => r.deviceStateBytes)),
    deviceStateSentBytesPerSync: mean(reports.map((r) => r.deviceStateSentBytes)),
    pauseMeanMs: mean(reports.map((r) => r.pauseMs)),
    pauseP50Ms: quantile(
      reports.map((r) => r.pauseMs),
      0.5,
    ),
    pauseP95Ms: quantile(
      reports.map((r) => r.pauseMs),
      0.95,
    ),
    totalP50Ms: quantile(
      reports.map((r) => r.totalMs),
      0.5,
    ),
    hashP50Ms: quantile(
      reports.map((r) => r.hashMs),
      0.5,
    ),
    linkBytesPerS: sum(reports.map((r) => r.bytesSent + r.bytesReceived)) / seconds,
    stepsP50Ms: stepMedians(reports.map((r) => r.stepsMs)),
    backupStepsP50Ms: stepMedians(all.filter((r) => r.side === 'backup').map((r) => r.stepsMs)),
  }
}

/** SET and GET calls the guest served per second over a load (INFO commandstats), if counted. */
function ratesOf(load: LoadResult): { setPerS: number; getPerS: number } | undefined {
  const served = load.served
  if (!served) return undefined
  const s = (served.end.at - served.start.at) / 1000
  return {
    setPerS: (served.end.set - served.start.set) / s,
    getPerS: (served.end.get - served.start.get) / s,
  }
}

const servedPerSOf = (load: LoadResult): number => {
  const r = ratesOf(load)
  return r ? r.setPerS + r.getPerS : Number.NaN
}

/** One configuration, with the orchestrator's cleanup; failures are returned, not thrown. */
export async function runConfig(spec: RunSpec, print: (l: string) => void): Promise<RunOutcome> {
  const loadavgBefore = loadavg()[0]
  const { Demo } = (await import(pathToFileURL(DEMO_RUN).href)) as DemoModule
  const reports: SyncReportMsg[] = []
  const demoOptions = {
    memoryMiB: spec.memoryMiB,
    loadBeforeKillS: spec.loadS,
    benchClients: spec.clients,
    benchIterationRequests: spec.iterationRequests,
    checker: false,
    noFailover: true,
    reprotect: false,
    deadlineMs: 600_000,
    ...(spec.syncMode ? { syncMode: spec.syncMode } : {}),
    ...(spec.hashFileReads ? { hashFileReads: spec.hashFileReads } : {}),
    ...(spec.deviceState ? { deviceState: spec.deviceState } : {}),
    ...(spec.fixedSyncIntervalMs ? { fixedSyncIntervalMs: spec.fixedSyncIntervalMs } : {}),
    ...(spec.syncPolicy ? { syncPolicy: spec.syncPolicy } : {}),
    onSyncReport: (r: SyncReportMsg) => reports.push(r),
    print: (l: string) => print(`    ${l}`),
  }
  const demo = new Demo(demoOptions)
  current = demo
  let pair: number[] | undefined
  const cpuAccounting = new CpuAccounting()
  cpuAccounting.start()
  try {
    let load: LoadResult
    let fullSyncMs: number | undefined
    let notDone: string[] | undefined
    if (spec.kind === 'plover') {
      const r = await demo.run()
      if (!r.load) throw new Error('the orchestrator returned no load result')
      load = r.load
      fullSyncMs = r.fullSyncMs
      notDone = r.notDone.filter((n) => !n.startsWith('failover skipped'))
    } else if (spec.kind === 'unreplicated-pair') {
      // WHY two guests at once: under VSMR both the primary's and the backup's guest execute every
      // request. Two unreplicated guests, each with its own client, loaded side by side on this
      // host, bound what any such pair can serve here, before a single byte of replication.
      const twin = new Demo({ ...demoOptions, print: (l: string) => print(`    [2] ${l}`) })
      const both = await Promise.allSettled([
        demo.runUnreplicated({ path: 'direct' }),
        twin.runUnreplicated({ path: 'direct' }),
      ])
      const failed = both.find((b) => b.status === 'rejected')
      if (failed) throw (failed as PromiseRejectedResult).reason
      const loads = both.map((b) => (b as PromiseFulfilledResult<LoadResult>).value)
      pair = loads.map(servedPerSOf)
      // The guest that served less is the pair's ceiling.
      load = loads[pair[0]! <= pair[1]! ? 0 : 1]!
    } else {
      load = await demo.runUnreplicated({ path: spec.kind === 'unreplicated-direct' ? 'direct' : 'relay' })
    }
    cpuAccounting.stop()
    const seconds = (load.endedAt - load.startedAt) / 1000
    const { setPerS, getPerS } = ratesOf(load) ?? {}
    const rows = load.rows
    const inWindow = reports.filter(
      (r) => r.at >= load.startedAt && r.at <= load.endedAt && !r.mode.startsWith('Full'),
    )
    const firstFull = reports.find((r) => r.side === 'primary' && r.mode.startsWith('Full'))
    const fullSync: FullSyncStats | undefined = firstFull && {
      mode: firstFull.mode,
      pauseMs: firstFull.pauseMs,
      totalMs: firstFull.totalMs,
      pages: firstFull.unionPages,
      sentPages: firstFull.divergentPages,
      bytesSent: firstFull.bytesSent,
      precopiedPages: firstFull.precopiedPages ?? 0,
      stepsMs: firstFull.stepsMs,
    }
    const a = load.primaryAtStart?.vm
    const b = load.primaryAtEnd?.vm
    const cpuUse = cpuAccounting.use(load.startedAt, load.endedAt)
    const servedPerS = setPerS !== undefined && getPerS !== undefined ? setPerS + getPerS : undefined
    const sync = spec.kind === 'plover' ? syncStats(inWindow, seconds) : undefined
    const syncsPerS = sync?.syncsPerS
    const cpu =
      cpuUse && servedPerS
        ? {
            ...cpuUse,
            msPerRequest: Object.fromEntries(
              CPU_CATEGORIES.map((c) => [c, (cpuUse.cores[c] * 1000) / servedPerS]),
            ) as Record<CpuCategory, number>,
            ...(syncsPerS ? { replicasMsPerSync: (cpuUse.cores.replicas * 1000) / syncsPerS } : {}),
          }
        : undefined
    return {
      spec,
      ok: true,
      loadavgBefore,
      seconds,
      ...(setPerS !== undefined && getPerS !== undefined
        ? { servedPerS: setPerS + getPerS, setPerS, getPerS }
        : {}),
      iterations: rows.length,
      p50MsMedian: quantile(
        rows.map((r) => r.p50Ms),
        0.5,
      ),
      p99MsMedian: quantile(
        rows.map((r) => r.p99Ms),
        0.5,
      ),
      p99MsMax: rows.length ? Math.max(...rows.map((r) => r.p99Ms)) : Number.NaN,
      ...(a?.inputBytes !== undefined && b?.inputBytes !== undefined
        ? { logBytesPerS: (b.inputBytes - a.inputBytes) / seconds }
        : {}),
      ...(spec.kind === 'plover' ? { sync } : {}),
      ...(fullSyncMs !== undefined ? { fullSyncMs } : {}),
      ...(fullSync ? { fullSync } : {}),
      ...(notDone?.length ? { notDone } : {}),
      ...(cpu ? { cpu } : {}),
      ...(pair ? { pairServedPerS: pair } : {}),
    }
  } catch (err) {
    await demo.cleanup().catch(() => {})
    return { spec, ok: false, error: (err as Error).message, loadavgBefore }
  } finally {
    cpuAccounting.stop()
    current = undefined
  }
}

export function fmt(x: number | undefined, digits = 1): string {
  if (x === undefined || !Number.isFinite(x)) return '—'
  return x.toFixed(digits)
}

export function fmtBytes(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return '—'
  if (x >= 1 << 20) return `${(x / (1 << 20)).toFixed(2)} MiB`
  if (x >= 1 << 10) return `${(x / (1 << 10)).toFixed(1)} KiB`
  return `${x.toFixed(0)} B`
}

export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (r: readonly string[]) => `| ${r.map((c, i) => c.padEnd(w[i])).join(' | ')} |`
  return [line(header), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...rows.map(line)].join('\n')
}
