// A real QEMU guest (Debian kernel + redis, TCG): idle at rest, busy under redis-benchmark, and
// an idle sync is due once the benchmark stops. Block I/O comes from QMP query-blockstats.
//
// @plover/qemu depends on this package, so it cannot be a dependency here: its built dist is
// loaded by relative path at run time. Skips when QEMU, the guest image or that dist is missing,
// unless PLOVER_REQUIRE_QEMU=1 (then it fails).
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import type { IdleBaseline } from '../src/calibration/idle-baseline.js'
import { monitorProcess } from '../src/monitor/monitor-process.js'
import type { SyncDue } from '../src/policy/sync-reason.js'
import { BlockstatsProbe, type QmpBlockstatsEntry, sumQmpBlockstats } from '../src/probes/blockstats-probe.js'
import { sleep } from './fixtures/children.js'

interface GuestVm {
  readonly pid: number
  readonly qmp: { queryBlockstats(): Promise<QmpBlockstatsEntry[]> }
}
interface QemuTesting {
  requireQemu(t: unknown): unknown
  bootTestGuest(t: unknown, env: unknown, o: object): Promise<GuestVm>
}

const QEMU_DIST = fileURLToPath(new URL('../../qemu/dist/testing/index.js', import.meta.url))

async function loadQemu(t: Test): Promise<{ q: QemuTesting; env: unknown } | undefined> {
  const missing = !existsSync(QEMU_DIST) ? `${QEMU_DIST} not built (pnpm -C packages/qemu build)` : undefined
  if (missing) {
    if (process.env.PLOVER_REQUIRE_QEMU === '1') t.fail(`PLOVER_REQUIRE_QEMU=1 but ${missing}`)
    else t.plan(0, `skipped: ${missing}`)
    return undefined
  }
  const spec = QEMU_DIST // a variable: keeps TypeScript from requiring the package's types
  const q = (await import(spec)) as QemuTesting
  const env = q.requireQemu(t) // skips, or fails under PLOVER_REQUIRE_QEMU=1
  return env ? { q, env } : undefined
}

function hasRedisBenchmark(): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d && existsSync(`${d}/redis-benchmark`))
}

t.test('QEMU redis guest: idle at rest, busy under redis-benchmark, idle sync after', async (t) => {
  const loaded = await loadQemu(t)
  if (!loaded) return
  if (!hasRedisBenchmark()) {
    if (process.env.PLOVER_REQUIRE_QEMU === '1')
      t.fail('PLOVER_REQUIRE_QEMU=1 but redis-benchmark is missing')
    else t.plan(0, 'skipped: redis-benchmark not installed')
    return
  }
  const port = 20000 + (process.pid % 20000)
  const vm = await loaded.q.bootTestGuest(t, loaded.env, {
    nic: { kind: 'user', hostForwards: [{ hostPort: port, guestPort: 6379 }], redirectors: false },
    memoryMiB: 128,
  })
  await sleep(3000) // post-boot work (module loads, redis start-up) is not "at rest"

  const m = monitorProcess(vm.pid, {
    io: new BlockstatsProbe(async () => sumQmpBlockstats(await vm.qmp.queryBlockstats())),
    calibration: { windowMs: 3000 },
    policy: { maxIntervalMs: 60_000 },
  })
  t.teardown(() => m.close())
  const samples: { atMs: number; classification: string; rate: number }[] = []
  m.on('sample', ({ observation, decision }) => {
    if (decision.interval) {
      samples.push({
        atMs: observation.atMs,
        classification: decision.classification,
        rate: decision.interval.cpuRateCores,
      })
    }
  })
  const dues: SyncDue[] = []
  m.on('sync-due', (d) => {
    dues.push(d)
    m.syncStarted()
    setTimeout(() => m.syncCompleted(), 5)
  })
  const calibrated = new Promise<IdleBaseline>((r) => m.once('calibrated', r))
  m.start()
  const b = await calibrated
  t.comment(
    `baseline p90 ${b.rateCores.toFixed(4)} cores, median ${b.medianCores.toFixed(4)}, band ${m.policy.ceilingCores?.toFixed(4)}`,
  )

  const restFrom = performance.now()
  await sleep(3000)
  const rest = samples.filter((s) => s.atMs > restFrom)
  const restIdle = rest.filter((s) => s.classification === 'idle').length / rest.length
  t.ok(restIdle >= 0.6, `at rest: ${(restIdle * 100).toFixed(0)} % of ${rest.length} intervals idle`)

  const bench: ChildProcess = spawn(
    'redis-benchmark',
    ['-h', '127.0.0.1', '-p', String(port), '-c', '1', '-P', '16', '-t', 'set,get', '-n', '100000000', '-q'],
    { stdio: 'ignore' },
  )
  t.teardown(() => {
    bench.kill('SIGKILL')
  })
  await sleep(1000)
  const loadFrom = performance.now()
  await sleep(3000)
  const loadEnd = performance.now()
  bench.kill('SIGKILL')
  const busy = samples.filter((s) => s.atMs > loadFrom && s.atMs <= loadEnd)
  const busyShare = busy.filter((s) => s.classification === 'busy').length / busy.length
  const meanRate = busy.reduce((s, x) => s + x.rate, 0) / busy.length
  t.ok(
    busyShare >= 0.7,
    `under redis-benchmark: ${(busyShare * 100).toFixed(0)} % of ${busy.length} intervals busy, ${meanRate.toFixed(2)} cores`,
  )
  t.same(
    dues.filter((d) => d.reason === 'idle' && d.atMs > loadFrom && d.atMs <= loadEnd).map((d) => d.atMs),
    [],
    'no idle sync while redis-benchmark runs',
  )

  await sleep(2000)
  const after = dues.find((d) => d.reason === 'idle' && d.atMs > loadEnd)
  t.ok(after, 'an idle sync is due after the benchmark stops')
  if (after) t.comment(`idle sync ${(after.atMs - loadEnd).toFixed(0)} ms after the load stopped`)
})
