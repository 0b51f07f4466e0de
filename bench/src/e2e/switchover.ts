// Planned switchover vs crash failover: examples/qemu-redis's orchestrator runs redis-benchmark
// and a checker client against the replicated guest, then either SIGTERMs the primary's replica
// process (it hands leadership to its synced backup before it stops: handOverPrimacy) or kill -9s
// its QEMU and replica process (the anchor: the backup is elected after an election timeout).
// Reported per run: failure -> backup leads, -> backup acts as primary, and the checker's outage
// (its last acknowledged SET before -> its first after, on the same TCP connection).
//
//   cd bench && pnpm e2e:switchover [--runs 3] [--memory 128]
//
// Root, QEMU and the guest image needed (see examples/qemu-redis/README.md).
import { mkdirSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { fmt, quantile, table } from './harness.js'

const DEMO_RUN = fileURLToPath(new URL('../../../examples/qemu-redis/src/demo/run.ts', import.meta.url))

interface SwitchoverDemo {
  run(): Promise<{
    readonly backupId: number
    readonly electedMs: number | undefined
    readonly handedOverTo?: number
    readonly promotedMs: number | undefined
    readonly clientOutageMs: number | undefined
    readonly checker?: { readonly connectionSurvived: boolean; readonly missingCount: number }
    readonly notDone: string[]
  }>
  cleanup(): Promise<void>
}

interface Row {
  readonly run: number
  readonly failure: 'switchover' | 'kill'
  readonly anchor: boolean
  readonly ok: boolean
  readonly error?: string
  readonly handedOver?: boolean
  readonly electedMs?: number
  readonly promotedMs?: number
  readonly clientOutageMs?: number
  readonly connectionSurvived?: boolean
  readonly loadavg: number
}

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    memory: { type: 'string', default: '128' },
  },
})
const runs = Number(values.runs)
const memoryMiB = Number(values.memory)
const { Demo } = (await import(pathToFileURL(DEMO_RUN).href)) as {
  Demo: new (o: Record<string, unknown>) => SwitchoverDemo
}

const rows: Row[] = []
for (let run = 1; run <= runs; run++) {
  for (const failure of ['switchover', 'kill'] as const) {
    console.log(`• run ${run}, ${failure}`)
    const load = loadavg()[0]
    const demo = new Demo({
      memoryMiB,
      benchClients: 2,
      loadBeforeKillS: 8,
      loadAfterTakeoverS: 3,
      reprotect: false,
      failure,
      deadlineMs: 300_000,
      print: (l: string) => console.log(`    ${l}`),
    })
    const base = { run, failure, anchor: failure === 'kill', loadavg: load }
    try {
      const r = await demo.run()
      const c = r.checker
      rows.push({
        ...base,
        ok: r.notDone.length === 0 && r.clientOutageMs !== undefined && c?.missingCount === 0,
        ...(r.notDone.length ? { error: r.notDone.join('; ') } : {}),
        handedOver: r.handedOverTo === r.backupId,
        ...(r.electedMs === undefined ? {} : { electedMs: r.electedMs }),
        ...(r.promotedMs === undefined ? {} : { promotedMs: r.promotedMs }),
        ...(r.clientOutageMs === undefined ? {} : { clientOutageMs: r.clientOutageMs }),
        ...(c ? { connectionSurvived: c.connectionSurvived } : {}),
      })
    } catch (err) {
      await demo.cleanup().catch(() => {})
      rows.push({ ...base, ok: false, error: (err as Error).message })
    }
  }
}

console.log(`\nPlanned switchover (SIGTERM) vs crash failover (kill -9), ${memoryMiB} MiB redis guests`)
console.log(
  table(
    [
      'run',
      'failure',
      'handed over',
      '→ backup leads',
      '→ backup primary',
      'checker outage',
      'connection',
      'load 1m',
    ],
    rows.map((r) => [
      String(r.run),
      r.anchor ? `${r.failure} (anchor)` : r.failure,
      r.ok ? (r.handedOver ? 'yes' : 'no') : `FAILED: ${r.error}`,
      r.electedMs !== undefined ? `${r.electedMs} ms` : '—',
      r.promotedMs !== undefined ? `${r.promotedMs} ms` : '—',
      r.clientOutageMs !== undefined ? `${r.clientOutageMs} ms` : '—',
      r.connectionSurvived === undefined ? '—' : r.connectionSurvived ? 'kept' : 'BROKEN',
      fmt(r.loadavg, 2),
    ]),
  ),
)
const median = (failure: Row['failure'], key: 'promotedMs' | 'clientOutageMs') =>
  quantile(
    rows.filter((r) => r.ok && r.failure === failure && r[key] !== undefined).map((r) => r[key]!),
    0.5,
  )
const outageRatio = median('kill', 'clientOutageMs') / median('switchover', 'clientOutageMs')
const promotedRatio = median('kill', 'promotedMs') / median('switchover', 'promotedMs')
console.log(
  `\nmedian over ${runs} run(s): kill / switchover — backup primary ${fmt(promotedRatio, 1)}×, checker outage ${fmt(outageRatio, 1)}×`,
)

const file = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'results', 'e2e-switchover.json')
mkdirSync(dirname(file), { recursive: true })
writeFileSync(
  file,
  `${JSON.stringify(
    {
      bench: 'e2e-switchover',
      date: new Date().toISOString(),
      loadavg: loadavg(),
      options: { runs, memoryMiB },
      rows,
      killOverSwitchover: {
        promotedMs: Number.isFinite(promotedRatio) ? promotedRatio : null,
        clientOutageMs: Number.isFinite(outageRatio) ? outageRatio : null,
      },
    },
    null,
    2,
  )}\n`,
)
console.log(`wrote ${file}`)
