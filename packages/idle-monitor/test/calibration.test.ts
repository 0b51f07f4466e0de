import t from 'tap'
import { Calibrator } from '../src/calibration/calibrator.js'
import { idleCeilingCores, runnableMeansBusy } from '../src/calibration/idle-baseline.js'
import { percentile } from '../src/calibration/percentile.js'

t.test('percentile interpolates between order statistics', async (t) => {
  t.equal(percentile([3, 1, 2], 0.5), 2)
  t.equal(percentile([0, 10], 0.9), 9)
  t.equal(percentile([5], 0.99), 5)
  t.throws(() => percentile([], 0.5), RangeError)
  t.throws(() => percentile([1], 1.5), RangeError)
})

t.test('the calibrator learns the rest rate from scripted observations', async (t) => {
  // 10 ms intervals: 90 at 0.02 cores, 10 timer bursts at 0.2 cores; threads runnable in 5 %.
  const cal = new Calibrator({ windowMs: 1000, percentile: 0.9, minIntervals: 10 })
  let cpuNs = 0
  let result = cal.add({ atMs: 0, cpuNs: 0, waitNs: 0, runnable: 0 })
  for (let i = 1; i <= 100 && !result; i++) {
    const rate = i % 10 === 0 ? 0.2 : 0.02
    cpuNs += rate * 10 * 1e6
    result = cal.add({ atMs: i * 10, cpuNs, waitNs: 0, runnable: i % 20 === 0 ? 1 : 0 })
  }
  if (!result) throw new Error('no baseline after the window')
  t.equal(result.intervals, 100)
  t.ok(Math.abs(result.medianCores - 0.02) < 1e-9, 'median = the common rate')
  t.ok(result.rateCores > 0.02 && result.rateCores < 0.2, `p90 ${result.rateCores} between quiet and burst`)
  t.equal(result.runnableShare, 0.05)
  t.ok(runnableMeansBusy(result))
  t.ok(Math.abs(idleCeilingCores(result, 2, 0.01) - (result.rateCores * 2 + 0.01)) < 1e-12)
})

t.test('runqueue wait at rest (host contention) does not inflate the baseline', async (t) => {
  const cal = new Calibrator({ windowMs: 100, percentile: 0.5, minIntervals: 10 })
  let b: ReturnType<Calibrator['add']>
  for (let i = 0; i <= 10; i++) b = cal.add({ atMs: i * 10, cpuNs: i * 1e6, waitNs: i * 5e6 })
  t.ok(Math.abs(b!.rateCores - 0.1) < 1e-9, 'run 0.1 cores; the 0.5 cores of wait are ignored')
})

t.test('too short a window is refused, not guessed', async (t) => {
  const cal = new Calibrator({ windowMs: 10, minIntervals: 10 })
  t.equal(cal.add({ atMs: 0, cpuNs: 0 }), undefined)
  t.equal(cal.add({ atMs: 50, cpuNs: 0 }), undefined, 'window covered but only 1 interval')
  t.throws(() => cal.result(), /needs 10/)
})

t.test('reseed: an interval spanning a sync pause is not measured', async (t) => {
  const cal = new Calibrator({ windowMs: 50, percentile: 1, minIntervals: 3 })
  cal.add({ atMs: 0, cpuNs: 0 })
  cal.add({ atMs: 10, cpuNs: 1e6 }) // 0.1 cores
  cal.reseed() // paused for a sync from 10 to 500 ms: the VM used nothing meanwhile
  cal.add({ atMs: 500, cpuNs: 1e6 })
  cal.add({ atMs: 510, cpuNs: 2e6 })
  const b = cal.add({ atMs: 520, cpuNs: 3e6 })
  t.ok(b, 'window covered')
  t.equal(b!.intervals, 3, 'the 490 ms pause interval is not among them')
  t.equal(b!.medianCores, 0.1)
})
