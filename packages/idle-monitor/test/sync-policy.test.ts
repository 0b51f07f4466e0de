// Scripted scenarios for the pure sync policy: each test says what it proves, then plays a
// sequence of samples (10 ms apart) and checks which syncs became due, why, and when.
import t from 'tap'
import { DEFAULT_POLICY, resolvePolicyConfig } from '../src/policy/policy-config.js'
import { SyncPolicy } from '../src/policy/sync-policy.js'
import { baselineOf, PERIOD_MS, PolicyScript } from './fixtures/policy-script.js'

// Idle band with baseline 0.02 cores and the defaults: 0.02 × 1.5 + 0.03 = 0.06 cores.
const BASE = baselineOf(0.02)
const cfg = { idleSamples: 3, minIntervalMs: 50, maxIntervalMs: 1000 }

t.test(
  'a guest that finishes a burst of work gets an idle sync after idleSamples quiet samples',
  async (t) => {
    const s = new PolicyScript(cfg, BASE).busyFor(100)
    t.same(s.fired, [], 'no sync while busy (100 ms < max interval)')
    const before = s.sampleCount
    s.idle(5)
    t.same(s.reasons(), ['idle'])
    t.equal(s.fired[0].sample, before + 3, 'due exactly on the third idle sample')
    t.equal(s.policy.phase, 'due')
    s.idle(20)
    t.equal(s.fired.length, 1, 'no repeat while due and under the max interval')
  },
)

t.test('the idle sync carries the samples that led to it, idle ones last', async (t) => {
  const s = new PolicyScript({ ...cfg, evidenceSamples: 5 }, BASE).busyFor(100).idle(3)
  const due = s.decisions.at(-1)!.syncDue!
  t.equal(due.samples.length, 5)
  t.same(
    due.samples.map((x) => x.idle),
    [false, false, true, true, true],
  )
  t.ok(due.samples.every((x) => x.endMs - x.startMs === PERIOD_MS))
  t.ok(Math.abs(due.samples[0].cpuRateCores - 0.9) < 1e-9, 'rates in cores')
  t.ok(Math.abs((due.ceilingCores ?? 0) - 0.06) < 1e-9, 'band = 0.02 × 1.5 + 0.03')
})

t.test(
  'a guest idle since the last sync is not re-synced on idleness, only by the max interval',
  async (t) => {
    const s = new PolicyScript(cfg, BASE).busyFor(60).idle(3)
    t.same(s.reasons(), ['idle'])
    s.sync().idleFor(990)
    t.same(s.reasons(), ['idle'], 'no idle trigger: nothing happened since the sync')
    s.idleFor(20)
    t.same(s.reasons(), ['idle', 'max-interval'])
  },
)

t.test('requireActivitySinceSync=false syncs an idle guest every minIntervalMs', async (t) => {
  const s = new PolicyScript({ ...cfg, requireActivitySinceSync: false }, BASE).idleFor(50)
  t.same(s.reasons(), ['idle'])
  s.sync().idleFor(40)
  t.equal(s.fired.length, 1, 'min interval not yet reached')
  s.idleFor(20)
  t.same(s.reasons(), ['idle', 'idle'])
})

t.test('held output counts as activity: the guest answered since the last sync', async (t) => {
  const s = new PolicyScript(cfg, BASE).idle(5).sync().idleFor(60)
  t.same(s.reasons(), [])
  s.idle(3, { heldBytes: 144, heldAgeMs: 10 })
  t.same(s.reasons(), ['idle'])
})

t.test('output frames count as activity even when the CPU stays in the band', async (t) => {
  const s = new PolicyScript(cfg, BASE).idle(5).sync().idleFor(60)
  t.same(s.reasons(), [], 'nothing happened, nothing due')
  s.idle(1, { framesOut: 2 }).idle(3)
  t.same(s.reasons(), ['idle'])
})

t.test('a never-idle guest is synced every maxIntervalMs (PLOVER would never sync it)', async (t) => {
  const s = new PolicyScript(cfg, BASE)
  for (let i = 0; i < 3; i++) s.busyFor(1000).sync(30)
  t.same(s.reasons(), ['max-interval', 'max-interval', 'max-interval'])
  const gaps = s.fired.slice(1).map((f, i) => f.atMs - s.fired[i].atMs)
  t.same(gaps, [1030, 1030], 'max interval counts from the end of the previous sync')
})

t.test('an idle streak right after a sync waits for the minimum interval', async (t) => {
  const s = new PolicyScript({ ...cfg, minIntervalMs: 200 }, BASE).busyFor(300).idle(3)
  t.same(s.reasons(), ['idle'])
  s.sync().busy(2).idle(3)
  t.equal(s.fired.length, 1, 'idle again after 50 ms, but min interval is 200 ms')
  const syncedAt = s.fired[0].atMs + 20
  s.idleFor(200)
  t.same(s.reasons(), ['idle', 'idle'])
  t.equal(s.fired[1].atMs - syncedAt, 200, 'due exactly when the min interval elapses')
})

t.test('a busy guest descheduled by a contended host is not idle: its threads are runnable', async (t) => {
  const s = new PolicyScript(cfg, BASE).busy(3)
  s.run(10, { cpu: 0, waitCpu: 0.9, runnable: 1 })
  t.same(s.fired, [], 'ran nothing for 100 ms, but wanted to')
  t.ok(s.decisions.slice(-10).every((d) => d.classification === 'busy'))
  s.idle(3)
  t.same(s.reasons(), ['idle'])
})

t.test('an idle guest whose rare wake-ups wait long on a contended host is still idle', async (t) => {
  const s = new PolicyScript(cfg, BASE).busy(3).run(3, { cpu: 0.01, waitCpu: 0.5, runnable: 0 })
  t.same(s.reasons(), ['idle'], 'runqueue wait is evidence, not work')
  const wait = s.decisions.at(-1)?.syncDue?.samples.at(-1)?.waitRateCores ?? 0
  t.ok(Math.abs(wait - 0.5) < 1e-9, 'the wait is reported in the evidence')
})

t.test(
  'a busy guest starved so long the kernel has not yet booked its wait is busy while runnable',
  async (t) => {
    // schedstat adds runqueue wait only when the thread finally runs: until then run = wait = 0.
    const s = new PolicyScript(cfg, BASE).busy(3).run(10, { cpu: 0, runnable: 1 })
    t.same(s.fired, [])
    s.idle(3)
    t.same(s.reasons(), ['idle'])
  },
)

t.test(
  'a VM whose threads are runnable even at rest (busy-polling) is judged by its CPU rate alone',
  async (t) => {
    const s = new PolicyScript(cfg, baselineOf(0.02, 0.9)).busy(3).idle(3, { runnable: 1 })
    t.same(s.reasons(), ['idle'])
  },
)

t.test('disk I/O breaks an idle streak even when the CPU is quiet', async (t) => {
  const s = new PolicyScript(cfg, BASE).busy(3)
  s.idle(2).idle(1, { ioBytes: 4096 }).idle(2)
  t.same(s.fired, [], 'the I/O sample reset the streak')
  s.idle(1)
  t.same(s.reasons(), ['idle'])
})

t.test('ioQuietBytes tolerates small background I/O', async (t) => {
  const s = new PolicyScript({ ...cfg, ioQuietBytes: 8192 }, BASE).busy(3).idle(3, { ioBytes: 4096 })
  t.same(s.reasons(), ['idle'])
})

t.test('a failed I/O reading is not quiet', async (t) => {
  const s = new PolicyScript(cfg, BASE).busy(3).idle(2).idle(1, { ioFailed: true }).idle(1)
  t.same(s.fired, [], 'the failed sample and the interval after it (no reading at its start) are not idle')
  s.idle(3)
  t.same(s.reasons(), ['idle'])
})

t.test('without an I/O probe the CPU alone decides', async (t) => {
  const s = new PolicyScript(cfg, BASE, false, false).busy(3).idle(3)
  t.same(s.reasons(), ['idle'])
})

t.test('output pressure by held bytes fires under load, after the min interval', async (t) => {
  const s = new PolicyScript({ ...cfg, maxHeldBytes: 64 * 1024 }, BASE)
  s.busy(3, { heldBytes: 100 * 1024, heldAgeMs: 5 })
  t.same(s.fired, [], 'min interval (50 ms) not reached')
  s.busy(2, { heldBytes: 100 * 1024, heldAgeMs: 5 })
  t.same(s.reasons(), ['output-pressure'])
  t.equal(s.fired[0].atMs - 1000, 50)
})

t.test('output pressure by age of the oldest held frame', async (t) => {
  const s = new PolicyScript({ ...cfg, maxHeldAgeMs: 100 }, BASE)
  s.busy(10, { heldBytes: 100, heldAgeMs: 99 })
  t.same(s.fired, [])
  s.busy(1, { heldBytes: 100, heldAgeMs: 100 })
  t.same(s.reasons(), ['output-pressure'])
})

// A closed-loop client: the guest answers a burst of requests (frames go out and are held), then
// waits on the wire for the held answers to be released while its CPU still looks busy.
const answering = { framesOut: 4, heldBytes: 2000, heldAgeMs: 5 }
const answered = { framesOut: 0, heldBytes: 2000, heldAgeMs: 5 }

t.test('output settled: off by default, whatever the wire does', async (t) => {
  const s = new PolicyScript({ ...cfg, maxHeldAgeMs: 10_000 }, BASE).busy(10, answering).busy(30, answered)
  t.same(s.fired, [], 'a busy guest with held, settled output gets no early sync by default')
})

t.test('output settled: due once the guest emitted nothing for outputSettledSamples intervals', async (t) => {
  const s = new PolicyScript({ ...cfg, maxHeldAgeMs: 10_000, outputSettledSamples: 2 }, BASE)
  s.busy(10, answering)
  t.same(s.fired, [], 'no sync while answers are still going out')
  s.busy(1, answered)
  t.same(s.fired, [], 'one quiet interval is not enough')
  const before = s.sampleCount
  s.busy(1, answered)
  t.same(s.reasons(), ['output-settled'], 'the second quiet interval makes it due, CPU busy or not')
  t.equal(s.fired[0].sample, before + 1)
})

t.test('output settled: an answer in between restarts the count', async (t) => {
  const s = new PolicyScript({ ...cfg, maxHeldAgeMs: 10_000, outputSettledSamples: 2 }, BASE)
  s.busy(10, answering).busy(1, answered).busy(1, answering).busy(1, answered)
  t.same(s.fired, [])
  s.busy(1, answered)
  t.same(s.reasons(), ['output-settled'])
})

t.test('output settled: never sooner than minIntervalMs after the last sync', async (t) => {
  const s = new PolicyScript({ ...cfg, maxHeldAgeMs: 10_000, outputSettledSamples: 1 }, BASE)
  s.busy(10, answering).sync()
  const syncedAt = s.atMs
  s.busy(1, answering).busy(10, answered)
  t.same(s.reasons(), ['output-settled'])
  t.equal(s.fired[0].atMs - syncedAt, 50, 'due on the sample at the 50 ms minimum, settled since long before')
})

t.test('output settled: nothing held, or no output probe, is never settled', async (t) => {
  const quiet = new PolicyScript({ ...cfg, maxHeldAgeMs: 10_000, outputSettledSamples: 1 }, BASE)
  quiet.busy(30, { framesOut: 0, heldBytes: 0 })
  t.same(quiet.fired, [], 'a guest that emitted nothing and holds nothing has nothing to release')
  const blind = new PolicyScript({ ...cfg, maxHeldAgeMs: 10_000, outputSettledSamples: 1 }, BASE, true, false)
  blind.busy(30, answered)
  t.same(blind.fired, [], 'without an output probe the trigger cannot tell')
})

t.test('output settled: the count restarts after a sync', async (t) => {
  const s = new PolicyScript({ ...cfg, maxHeldAgeMs: 10_000, outputSettledSamples: 3 }, BASE)
  s.busy(10, answering).busy(2, answered).sync()
  s.busy(10, answering).busy(2, answered)
  t.same(s.fired, [], 'two quiet intervals before the sync and two after do not add up')
  s.busy(1, answered)
  t.same(s.reasons(), ['output-settled'])
})

t.test('nothing held is never pressure, whatever the reported age', async (t) => {
  const s = new PolicyScript({ ...cfg, maxHeldAgeMs: 10 }, BASE).busy(50, { heldBytes: 0, heldAgeMs: 500 })
  t.same(s.fired, [])
})

t.test('idle wins over pressure and max interval when several hold at once', async (t) => {
  const s = new PolicyScript({ ...cfg, maxHeldAgeMs: 10 }, BASE).busyFor(1000)
  t.same(s.reasons(), ['max-interval'])
  s.sync().busyFor(60).idle(2).idle(1, { heldBytes: 10, heldAgeMs: 30 })
  t.same(s.reasons(), ['max-interval', 'idle'], 'idle and pressure hold on the same sample: idle names it')
})

t.test('while a sync runs nothing fires and the pause does not count as idleness', async (t) => {
  const s = new PolicyScript(cfg, BASE).busy(3).idle(3)
  s.policy.syncStarted(s.atMs)
  s.run(200, { cpu: 0 })
  t.equal(s.fired.length, 1, 'no trigger during a 2 s sync, not even max-interval')
  t.equal(s.policy.phase, 'syncing')
  s.policy.syncCompleted(s.atMs)
  s.idle(5)
  t.equal(s.decisions.at(-1)!.idleStreak, 4, 'the first sample after the sync only re-seeds')
  t.equal(s.fired.length, 1)
})

t.test('a sync-due nobody acts on is repeated after maxIntervalMs, as max-interval', async (t) => {
  const s = new PolicyScript(cfg, BASE).busy(3).idle(3)
  s.busyFor(990)
  t.equal(s.fired.length, 1)
  s.busyFor(20)
  t.same(s.reasons(), ['idle', 'max-interval'])
})

t.test('before calibration every interval is unknown and only max-interval fires', async (t) => {
  const s = new PolicyScript(cfg, undefined).idleFor(500)
  t.ok(s.decisions.every((d) => d.classification === 'unknown'))
  t.same(s.fired, [])
  s.idleFor(510)
  t.same(s.reasons(), ['max-interval'])
  s.policy.setBaseline(BASE)
  s.sync().busy(3).idle(3)
  t.same(s.reasons(), ['max-interval', 'idle'])
})

t.test('the band is relative: the same rate is idle for a noisy VM and busy for a quiet one', async (t) => {
  const noisy = new PolicyScript(cfg, baselineOf(0.2)).run(3, { cpu: 0.3 })
  const quiet = new PolicyScript(cfg, baselineOf(0.01)).run(3, { cpu: 0.3 })
  t.equal(noisy.decisions.at(-1)!.classification, 'idle', '0.3 < 0.2 × 1.5 + 0.03')
  t.equal(quiet.decisions.at(-1)!.classification, 'busy', '0.3 > 0.01 × 1.5 + 0.03')
})

t.test('config: defaults are documented values and nonsense is rejected', async (t) => {
  t.same(resolvePolicyConfig(), DEFAULT_POLICY)
  t.equal(resolvePolicyConfig({ idleSamples: 8 }).evidenceSamples, 8, 'evidence covers the idle streak')
  t.throws(() => new SyncPolicy({ minIntervalMs: 2000, maxIntervalMs: 1000 }), /minIntervalMs/)
  t.throws(() => new SyncPolicy({ idleSamples: 0 }), /idleSamples/)
  t.throws(() => new SyncPolicy({ idleFloorCores: -1 }), /idleFloorCores/)
})

t.test('time going backwards or standing still is ignored, not divided by', async (t) => {
  const p = new SyncPolicy(cfg, BASE)
  p.observe({ atMs: 100, cpuNs: 0 })
  const same = p.observe({ atMs: 100, cpuNs: 5e6 })
  t.equal(same.interval, undefined)
  const next = p.observe({ atMs: 110, cpuNs: 5e6 })
  t.equal(next.interval?.cpuRateCores, 0)
})
