// End to end on QEMU: redis throughput and latency under redis-benchmark (50 % SET / 50 % GET:
// a SET and a GET benchmark side by side, same command line everywhere) for
//   (a) an unreplicated QEMU redis guest on the same bridge/tap/client namespace — directly on its
//       tap (no Node in the path; the anchor) and with every frame relayed through Node,
//   (b) Plover (VSMR) and (c) Plover in Remus mode: two QEMU guests + witness through
//       examples/qemu-redis's orchestrator, idle-monitor syncs, no failover,
// plus sync-link and log bandwidth for (b) and (c). All in one run, one configuration after the
// other (fresh network and guests each); ratios are against the anchor of this run.
//
//   cd bench && pnpm e2e [--quick] [--load-s 30] [--memory 128] [--clients 50] [--iter 1000]
//                        [--iter-replicated 500] [--no-relay] [--only vsmr,remus,direct,relay]
//                        [--min-interval-ms N] [--max-held-age-ms N] [--period-ms N] [--output-settled N]
//                        [--quiet-window-ms N] [--quiet-max-ms N]
//                        [--file-reads auto|mmap|pread] [--device-state snapshot|migration]
//                        [--link-mbit N] [--out NAME]   (results/NAME.json; default e2e, or e2e-subset with --only)
//   (--min-interval-ms, --max-held-age-ms, --period-ms and --output-settled override the idle monitor's policy on
//   both Plover configurations, --quiet-window-ms and --quiet-max-ms how long each side waits for
//   its guest to go quiet before pausing; --file-reads how their hash workers read guest RAM;
//   --device-state the form of device state their primaries send; --link-mbit N limits the
//   replicas' network to N Mbit/s as between hosts, see shaped-link.ts)
//
// Root, QEMU and the guest image needed (see examples/qemu-redis/README.md).
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { CPU_CATEGORIES } from './cpu-accounting.js'
import { fmt, fmtBytes, type RunOutcome, type RunSpec, runConfig, table } from './harness.js'
import { insideShapedNamespace, reexecShaped, shapeLoopback } from './shaped-link.js'

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    'load-s': { type: 'string' },
    memory: { type: 'string', default: '128' },
    // redis-benchmark's own default; output commit needs many requests in flight per sync.
    clients: { type: 'string', default: '50' },
    iter: { type: 'string', default: '1000' },
    'iter-replicated': { type: 'string', default: '500' },
    'no-relay': { type: 'boolean', default: false },
    only: { type: 'string' },
    'min-interval-ms': { type: 'string' },
    'max-held-age-ms': { type: 'string' },
    'period-ms': { type: 'string' },
    'output-settled': { type: 'string' },
    'quiet-window-ms': { type: 'string' },
    'quiet-max-ms': { type: 'string' },
    'file-reads': { type: 'string' },
    'device-state': { type: 'string' },
    out: { type: 'string' },
    'link-mbit': { type: 'string' },
  },
})
const linkMbit = values['link-mbit'] === undefined ? undefined : Number(values['link-mbit'])
if (linkMbit !== undefined && !(linkMbit > 0))
  throw new Error(`--link-mbit must be > 0, got ${values['link-mbit']}`)
if (linkMbit !== undefined && !insideShapedNamespace()) process.exit(await reexecShaped())
if (linkMbit !== undefined) shapeLoopback(linkMbit)
const loadS = Number(values['load-s'] ?? (values.quick ? 12 : 30))
const base = {
  loadS,
  memoryMiB: Number(values.memory),
  clients: Number(values.clients),
  iterationRequests: Number(values.iter),
}
const policyFlag = (
  name:
    | 'min-interval-ms'
    | 'max-held-age-ms'
    | 'period-ms'
    | 'output-settled'
    | 'quiet-window-ms'
    | 'quiet-max-ms',
) => {
  const v = values[name]
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number ≥ 0, got ${v}`)
  return n
}
const syncPolicy = Object.fromEntries(
  Object.entries({
    minIntervalMs: policyFlag('min-interval-ms'),
    maxHeldAgeMs: policyFlag('max-held-age-ms'),
    periodMs: policyFlag('period-ms'),
    outputSettledSamples: policyFlag('output-settled'),
    quietWindowMs: policyFlag('quiet-window-ms'),
    quietMaxMs: policyFlag('quiet-max-ms'),
  }).filter(([, v]) => v !== undefined),
)
/** The value of --`name` if it is one of `allowed`; undefined when the flag is absent. */
function choice<T extends string>(name: 'file-reads' | 'device-state', allowed: readonly T[]): T | undefined {
  const v = values[name]
  if (v !== undefined && !allowed.includes(v as T))
    throw new Error(`--${name} takes ${allowed.join(', ')}; got ${v}`)
  return v as T | undefined
}
const fileReads = choice('file-reads', ['auto', 'mmap', 'pread'] as const)
const deviceState = choice('device-state', ['snapshot', 'migration'] as const)
const replicated = {
  ...base,
  ...(deviceState ? { deviceState } : {}),
  ...(fileReads ? { hashFileReads: fileReads } : {}),
  iterationRequests: Number(values['iter-replicated']),
  ...(Object.keys(syncPolicy).length > 0 ? { syncPolicy } : {}),
}
const only = values.only?.split(',').map((s) => s.trim())
const KEYS = ['direct', 'relay', 'pair', 'vsmr', 'remus']
for (const k of only ?? [])
  if (!KEYS.includes(k)) throw new Error(`--only takes ${KEYS.join(', ')}; got ${k}`)
const keyOf = (s: RunSpec) =>
  s.kind === 'unreplicated-direct'
    ? 'direct'
    : s.kind === 'unreplicated-relay'
      ? 'relay'
      : s.kind === 'unreplicated-pair'
        ? 'pair'
        : s.syncMode!
const allSpecs: RunSpec[] = [
  { ...base, label: 'unreplicated (direct tap)', kind: 'unreplicated-direct' },
  ...(values['no-relay']
    ? []
    : [{ ...base, label: 'unreplicated (frames via Node)', kind: 'unreplicated-relay' as const }]),
  {
    ...base,
    label: 'two unreplicated guests at once (each)',
    kind: 'unreplicated-pair',
  },
  // Fewer requests per iteration where throughput is ~100× lower, so iterations complete (and
  // report latency) within the window; throughput comes from the guest's counters either way.
  { ...replicated, label: 'Plover (VSMR, idle syncs)', kind: 'plover', syncMode: 'vsmr' },
  { ...replicated, label: 'Plover (Remus mode, idle syncs)', kind: 'plover', syncMode: 'remus' },
]
const specs = allSpecs.filter((s) => !only || only.includes(keyOf(s)))

const t0 = Date.now()
const print = (l: string) => process.stdout.write(`${l}\n`)
print(
  `e2e: ${specs.length} configurations × ${loadS} s load, ${base.memoryMiB} MiB guests, redis-benchmark -c ${base.clients} SET + GET, ` +
    `${base.iterationRequests} (unreplicated) / ${replicated.iterationRequests} (Plover) requests per iteration` +
    (linkMbit !== undefined ? `, replicas' network ${linkMbit} Mbit/s` : ''),
)
const outcomes: RunOutcome[] = []
for (const spec of specs) {
  print(`• ${spec.label}`)
  const o = await runConfig(spec, print)
  outcomes.push(o)
  print(
    o.ok
      ? `  served ${fmt(o.servedPerS)} req/s${o.pairServedPerS ? ` (the lesser of ${o.pairServedPerS.map((x) => fmt(x)).join(' and ')})` : ''}, p99 ${fmt(o.p99MsMedian, 2)} ms (median of ${o.iterations} iterations)`
      : `  FAILED: ${o.error}`,
  )
}

const anchor = outcomes.find((o) => o.spec.kind === 'unreplicated-direct' && o.ok)
const vsmr = outcomes.find((o) => o.spec.syncMode === 'vsmr' && o.ok)
const remus = outcomes.find((o) => o.spec.syncMode === 'remus' && o.ok)
const ratio = (a: number | undefined, b: number | undefined) =>
  a !== undefined && b !== undefined && b > 0 ? a / b : undefined

print('\nThroughput and latency (served = the guest’s SET+GET calls per second; latency per iteration)')
print(
  table(
    [
      'configuration',
      'served req/s',
      'SET/s',
      'GET/s',
      '× anchor',
      'iterations',
      'p50 ms (median)',
      'p99 ms (median)',
      'p99 ms (max)',
    ],
    outcomes.map((o) => [
      o.spec.label,
      o.ok ? fmt(o.servedPerS) : `FAILED: ${o.error}`,
      fmt(o.setPerS),
      fmt(o.getPerS),
      fmt(ratio(o.servedPerS, anchor?.servedPerS), 3),
      String(o.iterations ?? '—'),
      fmt(o.p50MsMedian, 2),
      fmt(o.p99MsMedian, 2),
      fmt(o.p99MsMax, 2),
    ]),
  ),
)
print('\nBandwidth between the replicas and syncs (load window; full syncs excluded)')
print(
  table(
    [
      'configuration',
      'sync link/s',
      'log input/s',
      'syncs',
      'syncs/s',
      'bytes/sync',
      'device state/sync (sent)',
      'pages sent/sync',
      'identical %',
      'pause p50',
      'pause p95',
    ],
    outcomes
      .filter((o) => o.spec.kind === 'plover')
      .map((o) => [
        o.spec.label,
        fmtBytes(o.sync?.linkBytesPerS),
        fmtBytes(o.logBytesPerS),
        String(o.sync?.syncs ?? '—'),
        fmt(o.sync?.syncsPerS, 2),
        fmtBytes(o.sync?.bytesPerSync),
        `${fmtBytes(o.sync?.deviceStateBytesPerSync)} (${fmtBytes(o.sync?.deviceStateSentBytesPerSync)})`,
        fmt(o.sync?.sentPagesPerSync),
        fmt(o.sync?.identicalPct),
        o.sync ? `${fmt(o.sync.pauseP50Ms, 0)} ms` : '—',
        o.sync ? `${fmt(o.sync.pauseP95Ms, 0)} ms` : '—',
      ]),
  ),
)
const plovers = outcomes.filter((o) => o.spec.kind === 'plover' && o.sync)
for (const side of ['primary', 'backup'] as const) {
  const stepsOf = (o: RunOutcome) => (side === 'primary' ? o.sync!.stepsP50Ms : o.sync!.backupStepsP50Ms)
  print(
    side === 'primary'
      ? '\nWhere a sync goes (primary, median ms per step; the VM runs again after "resume")'
      : '\nWhere a sync goes (backup, median ms per step; it acks after "waitTransfer", then applies)',
  )
  const stepNames = [...new Set(plovers.flatMap((o) => Object.keys(stepsOf(o))))]
  print(
    table(
      ['configuration', ...stepNames],
      plovers.map((o) => [o.spec.label, ...stepNames.map((n) => fmt(stepsOf(o)[n], 1))]),
    ),
  )
}
print(
  '\nWhere the host CPU goes (cores used over the load window; "other" = host busy minus the rest: ' +
    "not this bench's processes)",
)
print(
  table(
    ['configuration', ...CPU_CATEGORIES, 'host busy', 'guests ms/req', 'replicas ms/req', 'replicas ms/sync'],
    outcomes.map((o) => [
      o.spec.label,
      ...CPU_CATEGORIES.map((c) => fmt(o.cpu?.cores[c], 2)),
      o.cpu ? `${fmt(o.cpu.hostBusyCores, 2)} of ${o.cpu.hostCores}` : '—',
      fmt(o.cpu?.msPerRequest.guests, 3),
      fmt(o.cpu?.msPerRequest.replicas, 3),
      fmt(o.cpu?.replicasMsPerSync, 1),
    ]),
  ),
)
const vsmrVsAnchor = ratio(vsmr?.servedPerS, anchor?.servedPerS)
const vsmrVsRemus = ratio(vsmr?.servedPerS, remus?.servedPerS)
print('\nTargets')
print(
  `  Plover ≥ 79 % of unreplicated throughput: ${vsmrVsAnchor === undefined ? 'not measured' : `${(vsmrVsAnchor * 100).toFixed(1)} % — ${vsmrVsAnchor >= 0.79 ? 'met' : 'NOT met'}`}`,
)
print(
  `  Plover ≥ 2× Remus mode:                   ${vsmrVsRemus === undefined ? 'not measured' : `${vsmrVsRemus.toFixed(2)}× — ${vsmrVsRemus >= 2 ? 'met' : 'NOT met'}`}`,
)
const result = {
  benchmark: 'e2e',
  date: new Date().toISOString(),
  host: { cpus: cpus().length, loadavgAtEnd: loadavg()[0] },
  wallSeconds: (Date.now() - t0) / 1000,
  settings: {
    ...base,
    iterationRequestsReplicated: replicated.iterationRequests,
    quick: values.quick,
    ...(only ? { only } : {}),
    ...(Object.keys(syncPolicy).length > 0 ? { syncPolicy } : {}),
    hashFileReads: fileReads ?? 'auto',
    deviceState: deviceState ?? 'snapshot',
    ...(linkMbit !== undefined ? { linkMbit } : {}),
  },
  outcomes,
  ratios: {
    ploverVsUnreplicated: vsmrVsAnchor ?? null,
    ploverVsRemus: vsmrVsRemus ?? null,
    pairVsUnreplicated:
      ratio(outcomes.find((o) => o.spec.kind === 'unreplicated-pair')?.servedPerS, anchor?.servedPerS) ??
      null,
    relayVsDirect:
      ratio(outcomes.find((o) => o.spec.kind === 'unreplicated-relay')?.servedPerS, anchor?.servedPerS) ??
      null,
  },
}
// WHY another file for a subset: results/e2e.json is the full comparison the docs quote.
const outName = values.out ?? (only ? 'e2e-subset' : 'e2e')
if (!/^[A-Za-z0-9_.-]+$/.test(outName)) throw new Error(`--out takes a file name, got ${outName}`)
const out = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'results', `${outName}.json`)
mkdirSync(dirname(out), { recursive: true })
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`)
print(`\nJSON: ${out}`)
print(JSON.stringify(result.ratios))
