// The QEMU half of the vmsync bench: VSMR vs Remus mode on a redis guest under redis-benchmark
// (SET + GET side by side), through examples/qemu-redis's orchestrator (two QEMU guests +
// witness, consensus-ordered inputs, held outputs, idle-monitor syncs, no failover), one mode after
// the other with fresh guests: pages and bytes per sync, identical-page %, pause p50/p95.
//
//   cd bench && pnpm vmsync:qemu [--quick] [--load-s 30] [--memory 256] [--clients 4]
//   (or pnpm vmsync -- --qemu: the SimulatedVm rows, then these)
//
// Root, QEMU and the guest image needed (see examples/qemu-redis/README.md).
import { mkdirSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { fmt, fmtBytes, type RunOutcome, runConfig, table } from '../e2e/harness.js'

export interface VmsyncQemuOptions {
  readonly loadS: number
  readonly memoryMiB: number
  readonly clients: number
}

export interface VmsyncQemuResult {
  readonly measured: true
  readonly date: string
  readonly loadavg: number[]
  readonly options: VmsyncQemuOptions
  readonly vsmr: RunOutcome
  readonly remus: RunOutcome
  /** Remus bytes per sync / VSMR bytes per sync (null when either failed). */
  readonly remusOverVsmrBytes: number | null
  readonly remusOverVsmrBytesWithoutDeviceState: number | null
}

export async function runVmsyncQemu(o: VmsyncQemuOptions): Promise<VmsyncQemuResult> {
  const out: Record<'vsmr' | 'remus', RunOutcome> = {} as Record<'vsmr' | 'remus', RunOutcome>
  for (const mode of ['vsmr', 'remus'] as const) {
    console.log(`• QEMU redis guest, ${mode}, ${o.memoryMiB} MiB`)
    out[mode] = await runConfig(
      {
        label: mode === 'vsmr' ? 'VSMR' : 'Remus',
        kind: 'plover',
        syncMode: mode,
        loadS: o.loadS,
        memoryMiB: o.memoryMiB,
        clients: o.clients,
        iterationRequests: 500,
      },
      (l) => console.log(l),
    )
    if (!out[mode].ok) console.log(`  FAILED: ${out[mode].error}`)
  }
  const v = out.vsmr.sync
  const r = out.remus.sync
  const noDev = (s: typeof v) => (s ? s.bytesPerSync - s.deviceStateSentBytesPerSync : 0)
  const result: VmsyncQemuResult = {
    measured: true,
    date: new Date().toISOString(),
    loadavg: loadavg(),
    options: o,
    vsmr: out.vsmr,
    remus: out.remus,
    remusOverVsmrBytes: v && r && v.bytesPerSync > 0 ? r.bytesPerSync / v.bytesPerSync : null,
    remusOverVsmrBytesWithoutDeviceState: v && r && noDev(v) > 0 ? noDev(r) / noDev(v) : null,
  }
  console.log(
    `\nQEMU redis guest (${o.memoryMiB} MiB, TCG) under redis-benchmark -c ${o.clients} SET + GET, ${o.loadS} s per mode, idle-monitor syncs (full syncs excluded)`,
  )
  console.log(
    table(
      [
        'mode',
        'syncs',
        'dirty pg/sync',
        'union/sync',
        'pages sent/sync',
        'identical %',
        'bytes/sync',
        'device state (sent)',
        'pause p50',
        'pause p95',
        'served req/s',
      ],
      [out.vsmr, out.remus].map((x) => [
        x.spec.label,
        x.ok ? String(x.sync?.syncs ?? 0) : `FAILED: ${x.error}`,
        fmt(x.sync?.dirtyPagesPerSync),
        fmt(x.sync?.unionPagesPerSync),
        fmt(x.sync?.sentPagesPerSync),
        fmt(x.sync?.identicalPct),
        fmtBytes(x.sync?.bytesPerSync),
        `${fmtBytes(x.sync?.deviceStateBytesPerSync)} (${fmtBytes(x.sync?.deviceStateSentBytesPerSync)})`,
        x.sync ? `${fmt(x.sync.pauseP50Ms, 0)} ms` : '—',
        x.sync ? `${fmt(x.sync.pauseP95Ms, 0)} ms` : '—',
        fmt(x.servedPerS),
      ]),
    ),
  )
  console.log('\nFull sync of the fresh backup (primary side), same guests:')
  console.log(
    table(
      [
        'mode',
        'full-sync form',
        'pages',
        'pre-copied',
        'pages sent paused',
        'bytes sent',
        'primary pause',
        'sync total',
      ],
      [out.vsmr, out.remus].map((x) => {
        const f = x.fullSync
        return [
          x.spec.label,
          f?.mode ?? '—',
          f ? String(f.pages) : '—',
          f ? String(f.precopiedPages) : '—',
          f ? `${f.sentPages} (${fmt((f.sentPages / f.pages) * 100)} %)` : '—',
          fmtBytes(f?.bytesSent),
          f ? `${fmt(f.pauseMs, 0)} ms` : '—',
          f ? `${fmt(f.totalMs, 0)} ms` : '—',
        ]
      }),
    ),
  )
  console.log(
    `Remus bytes / VSMR bytes per sync: ${fmt(result.remusOverVsmrBytes ?? undefined, 2)}× (without device state ${fmt(result.remusOverVsmrBytesWithoutDeviceState ?? undefined, 2)}×; target ≥ 10×)`,
  )
  console.log(
    `identical pages (VSMR): ${fmt(v?.identicalPct)} % (target ≥ 95 %); pause p50 ${fmt(v?.pauseP50Ms, 0)} ms (target ≤ 50 ms for 256 MiB)`,
  )
  return result
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      'load-s': { type: 'string' },
      memory: { type: 'string', default: '256' },
      clients: { type: 'string', default: '50' },
    },
  })
  const result = await runVmsyncQemu({
    loadS: Number(values['load-s'] ?? (values.quick ? 12 : 30)),
    memoryMiB: Number(values.memory),
    clients: Number(values.clients),
  })
  const file = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'results', 'vmsync-qemu.json')
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, `${JSON.stringify({ bench: 'vmsync-qemu', ...result }, null, 2)}\n`)
  console.log(`wrote ${file}`)
}
