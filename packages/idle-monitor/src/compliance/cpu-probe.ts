// Behavioural compliance suite for CpuProbe implementations: ProcessCpuProbe here (both of its
// /proc sources), SimulatedVm's probe in @plover/vmsync, the QEMU example's pid-following probe.
// The sync policy relies on exactly these properties: a CPU clock that never goes back, that
// moves when the process works and (much) less when it does not, that cannot run faster than the
// host's cores, and a process that is gone reported as 'gone' — every time, never thrown.
import { availableParallelism } from 'node:os'
import type { CpuProbe, CpuSample } from '../probes/cpu-probe.js'

/** The subset of a tap `Test` the suite uses (structural: no runtime tap dependency). */
export interface ComplianceTest {
  test(name: string, fn: (t: ComplianceTest) => Promise<void>): unknown
  ok(value: unknown, message: string): unknown
  equal(found: unknown, wanted: unknown, message: string): unknown
}

/** A probe on a process the suite can drive. */
export interface CpuProbeSubject {
  readonly probe: CpuProbe
  /** Keeps the measured process working for about `ms` of wall time; resolves after. */
  busy(ms: number): Promise<void>
  /** Ends the process (kill, exit, crash); resolves once it is gone. */
  end(): Promise<void>
  cleanup(): Promise<void>
}

export interface CpuProbeComplianceOptions {
  /** Length of the busy and idle periods compared (default 400 ms). */
  readonly periodMs?: number
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

function cpuNs(s: CpuSample): number | undefined {
  return s.state === 'ok' ? s.cpuNs : undefined
}

/** CPU time `probe` saw over `run` and the wall time it took. */
async function measure(probe: CpuProbe, run: () => Promise<void>): Promise<{ cpu: number; wall: number }> {
  const a = cpuNs(probe.sample())
  const t0 = performance.now()
  await run()
  const wall = (performance.now() - t0) * 1e6
  const b = cpuNs(probe.sample())
  return { cpu: a === undefined || b === undefined ? Number.NaN : b - a, wall }
}

/** Runs every check as a subtest of `t`; each subtest gets a fresh subject from `factory`. */
export async function runCpuProbeCompliance(
  t: ComplianceTest,
  factory: () => Promise<CpuProbeSubject>,
  options: CpuProbeComplianceOptions = {},
): Promise<void> {
  const period = options.periodMs ?? 400
  const check = (name: string, body: (t: ComplianceTest, s: CpuProbeSubject) => Promise<void>) =>
    t.test(name, async (t) => {
      const subject = await factory()
      try {
        await body(t, subject)
      } finally {
        subject.probe.close()
        await subject.cleanup()
      }
    })

  await check('resolution is a positive number of nanoseconds', async (t, { probe }) => {
    t.ok(Number.isFinite(probe.resolutionNs) && probe.resolutionNs > 0, `resolutionNs ${probe.resolutionNs}`)
  })

  await check('samples are ok, never go back, and count threads', async (t, { probe, busy }) => {
    const seen: CpuSample[] = []
    for (let i = 0; i < 10; i++) {
      seen.push(probe.sample())
      if (i % 3 === 0) await busy(20)
      else await sleep(5)
    }
    const bad = seen.find((s) => s.state !== 'ok')
    t.equal(bad === undefined ? 'ok' : `${bad.state}: ${bad.error.message}`, 'ok', 'every sample ok')
    const ns = seen.map(cpuNs)
    t.ok(
      ns.every((v) => v !== undefined && Number.isFinite(v) && v >= 0),
      'cpuNs finite, not negative',
    )
    t.ok(
      ns.every((v, i) => i === 0 || (v ?? 0) >= (ns[i - 1] ?? 0)),
      `monotonic: ${ns.join(' ')}`,
    )
    t.ok(
      seen.every((s) => s.state !== 'ok' || (Number.isInteger(s.threads) && s.threads >= 1)),
      'threads is a positive integer',
    )
  })

  await check('work shows: a busy period reads more CPU than an idle one', async (t, { probe, busy }) => {
    const idle = await measure(probe, () => sleep(period))
    const work = await measure(probe, () => busy(period))
    t.ok(
      work.cpu > idle.cpu && work.cpu >= probe.resolutionNs,
      `busy ${(work.cpu / 1e6).toFixed(1)} ms > idle ${(idle.cpu / 1e6).toFixed(1)} ms of CPU`,
    )
    // No clock runs faster than every core of the host working the whole time.
    const cores = availableParallelism()
    for (const [name, m] of [
      ['idle', idle],
      ['busy', work],
    ] as const)
      t.ok(
        m.cpu <= m.wall * cores + probe.resolutionNs,
        `${name}: ${(m.cpu / 1e6).toFixed(1)} ms of CPU in ${(m.wall / 1e6).toFixed(1)} ms on ${cores} cores`,
      )
  })

  await check("a process that ended is 'gone', every time, never thrown", async (t, { probe, end }) => {
    probe.sample()
    await end()
    let last: CpuSample | undefined
    let threw: unknown
    const until = Date.now() + 2000
    try {
      do {
        last = probe.sample()
        if (last.state === 'gone') break
        await sleep(20)
      } while (Date.now() < until)
    } catch (err) {
      threw = err
    }
    t.equal(threw, undefined, 'sample() did not throw')
    t.equal(last?.state, 'gone', 'reported gone (within 2 s)')
    const again = [probe.sample(), probe.sample()].map((s) => s.state)
    t.ok(
      again.every((s) => s === 'gone'),
      `and again: ${again.join(', ')}`,
    )
  })
}
