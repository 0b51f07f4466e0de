// The monitor on real processes: a child that alternates busy and idle phases, one that never
// rests, held output that piles up, and a child that gets SIGKILLed. Two cores are shared with
// other work, so bounds are generous and nothing asserts an exact timing.
import type { ChildProcess } from 'node:child_process'
import t from 'tap'
import type { IdleBaseline } from '../src/calibration/idle-baseline.js'
import type { IdleMonitor } from '../src/monitor/idle-monitor.js'
import { monitorProcess } from '../src/monitor/monitor-process.js'
import type { SyncDue } from '../src/policy/sync-reason.js'
import { ProcessGoneError } from '../src/probes/process-gone-error.js'
import { killAndReap, PHASES, SLEEPER, SPINNER, sleep, spawnNode, waitForLine } from './fixtures/children.js'
import { HeldOutput } from './fixtures/held-output.js'

const QUIET: IdleBaseline = {
  rateCores: 0.005,
  medianCores: 0,
  percentile: 0.9,
  runnableShare: 0,
  intervals: 100,
  meanIntervalMs: 10,
}

/** Acts like vmsync: on sync-due, "syncs" for `pauseMs` and reports start and completion. */
function actAsSyncer(m: IdleMonitor, pauseMs = 5, onDone?: () => void): SyncDue[] {
  const dues: SyncDue[] = []
  m.on('sync-due', (d) => {
    dues.push(d)
    m.syncStarted()
    setTimeout(() => {
      onDone?.()
      m.syncCompleted()
    }, pauseMs)
  })
  return dues
}

async function started(code: string, args: string[] = []): Promise<ChildProcess> {
  const child = spawnNode(code, args)
  await waitForLine(child, /ready|phase/)
  return child
}

t.test('a child alternating busy and idle phases is classified correctly with bounded delay', async (t) => {
  const plan: [string, number][] = [
    ['idle', 1500],
    ['busy', 700],
    ['idle', 900],
    ['busy', 700],
    ['idle', 900],
  ]
  const child = spawnNode(PHASES, [JSON.stringify(plan)])
  t.teardown(() => killAndReap(child))
  const phases: { name: string; startMs: number; endMs: number }[] = []
  let done!: () => void
  const finished = new Promise<void>((r) => (done = r))
  child.stdout!.on('data', (d: string) => {
    for (const line of d.split('\n')) {
      const now = performance.now()
      if (phases.length) phases[phases.length - 1].endMs = now
      if (line.startsWith('phase '))
        phases.push({ name: line.slice(6), startMs: now, endMs: Number.POSITIVE_INFINITY })
      if (line === 'done') done()
    }
  })
  await waitForLine(child, /phase idle/)
  await sleep(150) // node's own start-up work is not the idle baseline

  const m = monitorProcess(child.pid!, { calibration: { windowMs: 800 }, policy: { maxIntervalMs: 10_000 } })
  t.teardown(() => m.close())
  const samples: { atMs: number; classification: string }[] = []
  m.on('sample', ({ observation, decision }) =>
    samples.push({ atMs: observation.atMs, classification: decision.classification }),
  )
  const calibrated = new Promise<IdleBaseline>((r) => m.once('calibrated', r))
  const dues = actAsSyncer(m)
  m.start()
  const baseline = await calibrated
  t.ok(baseline.rateCores < 0.1, `sleeping child's baseline ${baseline.rateCores.toFixed(4)} cores`)
  await finished
  m.stop()

  const busy = phases.filter((p) => p.name === 'busy')
  const idleAfterBusy = phases.filter((p, i) => p.name === 'idle' && i > 0)
  t.equal(busy.length, 2)
  for (const p of busy) {
    const mid = samples.filter((s) => s.atMs > p.startMs + 150 && s.atMs < p.endMs)
    const busyShare = mid.filter((s) => s.classification === 'busy').length / mid.length
    t.ok(
      busyShare >= 0.7,
      `busy phase: ${(busyShare * 100).toFixed(0)} % of ${mid.length} samples classified busy`,
    )
    const firstBusy = samples.find((s) => s.atMs >= p.startMs && s.classification === 'busy')
    t.ok(
      firstBusy && firstBusy.atMs - p.startMs < 300,
      `busy seen ${(firstBusy!.atMs - p.startMs).toFixed(0)} ms into the phase`,
    )
    const wrongIdle = dues.filter((d) => d.reason === 'idle' && d.atMs > p.startMs + 150 && d.atMs < p.endMs)
    t.same(wrongIdle, [], 'no idle sync in the middle of a busy phase')
  }
  for (const p of idleAfterBusy) {
    const idleDue = dues.find((d) => d.reason === 'idle' && d.atMs >= p.startMs && d.atMs < p.endMs)
    t.ok(idleDue, 'an idle sync is due in every idle phase that follows work')
    if (!idleDue) continue
    const delay = idleDue.atMs - p.startMs
    t.ok(delay < 500, `idle sync ${delay.toFixed(0)} ms after the guest went idle`)
    t.ok(
      idleDue.samples.slice(-m.policy.config.idleSamples).every((s) => s.idle === true),
      'its evidence ends with idleSamples idle intervals',
    )
    const extra = dues.filter((d) => d.reason === 'idle' && d.atMs > idleDue.atMs && d.atMs < p.endMs)
    t.same(extra, [], 'one idle sync per idle phase: nothing happened after it')
  }
})

t.test('max-interval forces syncs on a guest that is never idle', async (t) => {
  const child = await started(SPINNER)
  t.teardown(() => killAndReap(child))
  const m = monitorProcess(child.pid!, { baseline: QUIET, policy: { maxIntervalMs: 300, minIntervalMs: 50 } })
  t.teardown(() => m.close())
  const dues = actAsSyncer(m)
  m.start()
  await sleep(2500)
  m.stop()
  t.ok(dues.length >= 3, `${dues.length} syncs in 2.5 s`)
  t.same(
    dues.filter((d) => d.reason !== 'max-interval').map((d) => d.reason),
    [],
    'every sync of a spinning guest is a max-interval one',
  )
  for (const d of dues)
    t.ok(d.sinceLastSyncMs >= 300, `due ${d.sinceLastSyncMs.toFixed(0)} ms after the last sync`)
  t.ok(dues[0].atMs - dues[0].samples[0].startMs < 1000, 'evidence is recent')
  t.ok(
    dues.every((d) => d.samples.some((s) => s.idle === false)),
    'evidence shows the guest busy',
  )
})

t.test('output pressure: held bytes over the bound force a sync on a busy guest', async (t) => {
  const child = await started(SPINNER)
  t.teardown(() => killAndReap(child))
  const out = new HeldOutput()
  const m = monitorProcess(child.pid!, {
    baseline: QUIET,
    output: out,
    policy: { maxIntervalMs: 60_000, maxHeldBytes: 16 * 1024, maxHeldAgeMs: 60_000 },
  })
  t.teardown(() => m.close())
  const dues = actAsSyncer(m, 5, () => out.release())
  const producer = setInterval(() => out.add(1500), 10) // ~150 KB/s of replies
  t.teardown(() => clearInterval(producer))
  m.start()
  await sleep(1500)
  m.stop()
  t.ok(dues.length >= 2, `${dues.length} pressure syncs in 1.5 s`)
  t.same(new Set(dues.map((d) => d.reason)), new Set(['output-pressure']))
  for (const d of dues)
    t.ok((d.samples.at(-1)!.heldBytes ?? 0) >= 16 * 1024, `held ${d.samples.at(-1)!.heldBytes} B`)
})

t.test('output pressure: an old held frame forces a sync', async (t) => {
  const child = await started(SPINNER)
  t.teardown(() => killAndReap(child))
  const out = new HeldOutput()
  const m = monitorProcess(child.pid!, {
    baseline: QUIET,
    output: out,
    policy: { maxIntervalMs: 60_000, maxHeldBytes: 1 << 30, maxHeldAgeMs: 150 },
  })
  t.teardown(() => m.close())
  const dues = actAsSyncer(m, 5, () => out.release())
  m.start()
  await sleep(300)
  t.same(dues, [], 'nothing held, nothing due')
  out.add(60)
  const addedAt = performance.now()
  await sleep(1000)
  m.stop()
  t.equal(dues.length, 1, `one frame, one sync: ${dues.map((d) => d.reason)}`)
  t.equal(dues[0]?.reason, 'output-pressure')
  const wait = (dues[0]?.atMs ?? Number.POSITIVE_INFINITY) - addedAt
  t.ok(wait >= 150 && wait < 1500, `released after ${wait.toFixed(0)} ms`)
})

t.test('SIGKILL: the monitor reports gone and stops itself, no exception', async (t) => {
  const child = await started(SPINNER)
  t.teardown(() => killAndReap(child))
  const m = monitorProcess(child.pid!, { baseline: QUIET })
  const gone = new Promise<ProcessGoneError>((r) => m.once('gone', r))
  m.start()
  await sleep(100)
  t.ok(m.running)
  child.kill('SIGKILL')
  const err = await gone
  t.type(err, ProcessGoneError)
  t.equal(err.pid, child.pid)
  t.notOk(m.running, 'stopped')
  m.close()
})

t.test('SIGKILL during calibration rejects the calibration with ProcessGoneError', async (t) => {
  const child = await started(SLEEPER)
  t.teardown(() => killAndReap(child))
  const m = monitorProcess(child.pid!, { calibration: { windowMs: 5000 } })
  t.teardown(() => m.close())
  m.start()
  const calibration = m.recalibrate()
  await sleep(100)
  child.kill('SIGKILL')
  await t.rejects(calibration, ProcessGoneError)
})

t.test('recalibrate learns a new baseline while the monitor runs', async (t) => {
  const child = await started(SLEEPER)
  t.teardown(() => killAndReap(child))
  const high: IdleBaseline = { ...QUIET, rateCores: 0.8 }
  const m = monitorProcess(child.pid!, { baseline: high })
  t.teardown(() => m.close())
  m.start()
  t.ok((m.policy.ceilingCores ?? 0) > 1, 'started with a (wrong) busy baseline')
  const b = await m.recalibrate({ windowMs: 500 })
  t.ok(b.rateCores < 0.05, `relearnt ${b.rateCores.toFixed(4)} cores`)
  t.ok(b.intervals >= 10, `${b.intervals} intervals`)
  t.equal(m.baseline, b)
  t.ok((m.policy.ceilingCores ?? 1) < 0.1, 'the band follows the new baseline')
})
