// Re-protection under load, with and without pre-copy: examples/qemu-redis's orchestrator runs
// redis-benchmark against the replicated guest, kills the primary, and starts the spare while the
// benchmark keeps running on the new primary. The spare's full sync is what differs:
//   - pre-copy (the default): the spare pauses and offers its page hashes, the new primary sends
//     the pages it lacks while it keeps serving, then pauses only to hash RAM and copy the pages
//     that changed since;
//   - no pre-copy (the anchor, same run): the full sync hashes and copies all of RAM while the
//     primary is paused.
// Reported per run: the new primary's pause for that full sync, pages sent while paused and
// before, bytes, and time from the spare joining to outputs protected again.
// With --against digests both variants pre-copy and the anchor instead hashes every page again
// for the comparison (reuseScanDigests: false) rather than taking the RAM scan's digests.
// With --against thawed the primary is frozen (SIGSTOP) instead of killed and, once thawed, is
// the new primary's backup again; the row is the new primary's first sync with it (its VM is
// trusted and shares the last cut with the new primary, so that sync can be incremental); the
// anchor is the spare with pre-copy.
//
//   cd bench && pnpm vmsync:reprotect [--memory 128] [--clients 50] [--runs 1] [--against precopy|digests|thawed]
//
// Root, QEMU and the guest image needed (see examples/qemu-redis/README.md).
import { mkdirSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { fmt, fmtBytes, quantile, type SyncReportMsg, table } from '../e2e/harness.js'

const DEMO_RUN = fileURLToPath(new URL('../../../examples/qemu-redis/src/demo/run.ts', import.meta.url))

interface ReprotectDemo {
  run(): Promise<{
    readonly backupId: number
    readonly reprotect?: { readonly protectedMs: number; readonly fullSyncMs: number }
    readonly thawed?: { readonly steppedDownMs: number; readonly protectedMs: number }
    readonly notDone: string[]
  }>
  cleanup(): Promise<void>
}

interface Variant {
  readonly precopy: boolean
  readonly reuseScanDigests: boolean
  /** 'hang': the old primary is frozen, thawed and becomes the backup (no spare). */
  readonly failure?: 'hang'
  readonly label: string
  readonly anchor: boolean
}

interface Row {
  readonly variant: string
  readonly anchor: boolean
  readonly precopy: boolean
  readonly reuseScanDigests: boolean
  readonly run: number
  readonly ok: boolean
  readonly error?: string
  readonly mode?: string
  readonly pauseMs?: number
  readonly totalMs?: number
  readonly pages?: number
  readonly precopiedPages?: number
  readonly pausedSentPages?: number
  readonly bytesSent?: number
  readonly deviceStateSentBytes?: number
  readonly stepsMs?: Readonly<Record<string, number>>
  /** Spare added (or old primary thawed) -> outputs protected again (includes pre-copy rounds). */
  readonly joinToProtectedMs?: number
  readonly notDone?: string[]
  readonly loadavg: number
}

const { values } = parseArgs({
  options: {
    memory: { type: 'string', default: '128' },
    clients: { type: 'string', default: '50' },
    runs: { type: 'string', default: '1' },
    against: { type: 'string', default: 'precopy' },
  },
})
const against = values.against
const VARIANTS: Record<string, Variant[]> = {
  precopy: [
    { precopy: true, reuseScanDigests: true, label: 'pre-copy', anchor: false },
    { precopy: false, reuseScanDigests: true, label: 'no pre-copy', anchor: true },
  ],
  digests: [
    { precopy: true, reuseScanDigests: true, label: 'scan digests', anchor: false },
    { precopy: true, reuseScanDigests: false, label: 'hashed again', anchor: true },
  ],
  thawed: [
    { precopy: true, reuseScanDigests: true, label: 'thawed old primary', anchor: false, failure: 'hang' },
    { precopy: true, reuseScanDigests: true, label: 'spare, pre-copy', anchor: true },
  ],
}
const variants = VARIANTS[against!]
if (!variants) throw new Error(`--against takes ${Object.keys(VARIANTS).join(', ')}; got ${against}`)
const memoryMiB = Number(values.memory)
const clients = Number(values.clients)
const runs = Number(values.runs)
const { Demo } = (await import(pathToFileURL(DEMO_RUN).href)) as {
  Demo: new (o: Record<string, unknown>) => ReprotectDemo
}

const rows: Row[] = []
for (let run = 1; run <= runs; run++) {
  for (const v of variants) {
    const { precopy, reuseScanDigests } = v
    const tag = { variant: v.label, anchor: v.anchor, precopy, reuseScanDigests }
    console.log(`• run ${run}, ${v.label}: ${memoryMiB} MiB guests, -c ${clients}`)
    const reports: (SyncReportMsg & { readonly id?: number })[] = []
    const load = loadavg()[0]
    const demo = new Demo({
      memoryMiB,
      benchClients: clients,
      loadBeforeKillS: 8,
      loadAfterTakeoverS: 6,
      precopy,
      reuseScanDigests,
      ...(v.failure ? { failure: v.failure } : {}),
      deadlineMs: 600_000,
      onSyncReport: (r: SyncReportMsg) => reports.push(r),
      print: (l: string) => console.log(`    ${l}`),
    })
    try {
      const r = await demo.run()
      // The new primary's full sync of the spare: the first full one it ran as primary.
      // A thawed old primary shares the new primary's last cut as its dirty baseline: its first
      // sync may be incremental, so for it take the first sync at all.
      const full = reports.find(
        (x) =>
          x.id === r.backupId && x.side === 'primary' && (v.failure === 'hang' || x.mode.startsWith('Full')),
      )
      rows.push({
        ...tag,
        run,
        ok: full !== undefined && (r.reprotect !== undefined || r.thawed !== undefined),
        ...(full
          ? {
              mode: full.mode,
              pauseMs: full.pauseMs,
              totalMs: full.totalMs,
              pages: full.unionPages,
              precopiedPages: full.precopiedPages ?? 0,
              pausedSentPages: full.divergentPages,
              bytesSent: full.bytesSent,
              deviceStateSentBytes: full.deviceStateSentBytes,
              stepsMs: full.stepsMs,
            }
          : { error: 'no sync report from the new primary' }),
        ...(r.reprotect ? { joinToProtectedMs: r.reprotect.fullSyncMs } : {}),
        ...(r.thawed ? { joinToProtectedMs: r.thawed.protectedMs } : {}),
        ...(r.notDone.length ? { notDone: r.notDone } : {}),
        loadavg: load,
      })
    } catch (err) {
      await demo.cleanup().catch(() => {})
      rows.push({ ...tag, run, ok: false, error: (err as Error).message, loadavg: load })
    }
  }
}

console.log(
  `\nRe-protection under redis-benchmark -c ${clients} (SET + GET), ${memoryMiB} MiB guests: the new primary's ${against === 'thawed' ? 'first sync with its new backup' : 'full sync of the spare'}`,
)
console.log(
  table(
    [
      'run',
      'variant',
      'primary pause',
      'hash step',
      'pages pre-copied',
      'pages sent paused',
      'bytes sent paused (device state)',
      'sync total',
      'join → protected',
      'load 1m',
    ],
    rows.map((r) => [
      String(r.run),
      r.anchor ? `${r.variant} (anchor)` : r.variant,
      r.ok ? `${fmt(r.pauseMs, 0)} ms` : `FAILED: ${r.error ?? r.notDone?.join('; ')}`,
      r.stepsMs?.hash !== undefined ? `${fmt(r.stepsMs.hash, 1)} ms` : '—',
      r.ok ? String(r.precopiedPages) : '—',
      r.ok ? `${r.pausedSentPages} / ${r.pages}` : '—',
      `${fmtBytes(r.bytesSent)} (${fmtBytes(r.deviceStateSentBytes)})`,
      r.ok ? `${fmt(r.totalMs, 0)} ms` : '—',
      r.joinToProtectedMs !== undefined ? `${fmt(r.joinToProtectedMs / 1000, 1)} s` : '—',
      fmt(r.loadavg, 2),
    ]),
  ),
)
// The lower median for an even count (quantile's nearest rank).
const pauseOf = (anchor: boolean) =>
  quantile(
    rows.filter((r) => r.ok && r.anchor === anchor).map((r) => r.pauseMs!),
    0.5,
  )
const ratio = pauseOf(true) / pauseOf(false)
console.log(
  `\nprimary pause ${variants[1]!.label} / ${variants[0]!.label}: ${fmt(ratio, 2)}× (median over ${runs} run(s) each)`,
)

const name = against === 'precopy' ? 'vmsync-reprotect' : `vmsync-reprotect-${against}`
const file = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'results', `${name}.json`)
mkdirSync(dirname(file), { recursive: true })
writeFileSync(
  file,
  `${JSON.stringify(
    {
      bench: 'vmsync-reprotect',
      date: new Date().toISOString(),
      loadavg: loadavg(),
      options: { memoryMiB, clients, runs, against },
      rows,
      // Anchor's pause over the variant's (against precopy: without / with pre-copy).
      ...(against === 'precopy'
        ? { pauseWithoutOverWithPrecopy: Number.isFinite(ratio) ? ratio : null }
        : { pauseAnchorOverVariant: Number.isFinite(ratio) ? ratio : null }),
    },
    null,
    2,
  )}\n`,
)
console.log(`wrote ${file}`)
