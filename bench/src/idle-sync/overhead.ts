// The idle monitor's own CPU cost: process.cpuUsage() of this process over a run of the monitor
// at several sampling periods (the default among them) on a QEMU at rest, next to a bare Node
// timer at the same period (what any sampler pays to wake up) and a run with nothing at all.
// Prints a table and JSON.
//
//   cd bench && node --import tsx src/idle-sync/overhead.ts
//   OVERHEAD_SECONDS=5 OVERHEAD_PERIODS=2,5,10,20,50 to change the run.
import { spawn } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { DEFAULT_PERIOD_MS, type IdleBaseline, monitorProcess } from '@plover/idle-monitor'

const seconds = Number(process.env.OVERHEAD_SECONDS ?? 5)
const periods = [
  ...new Set((process.env.OVERHEAD_PERIODS ?? `2,5,10,${DEFAULT_PERIOD_MS},50`).split(',').map(Number)),
].sort((a, b) => a - b)

// Fixed baseline: calibration is not what is measured here.
const baseline: IdleBaseline = {
  rateCores: 0.01,
  medianCores: 0.01,
  percentile: 0.9,
  runnableShare: 0,
  intervals: 0,
  meanIntervalMs: DEFAULT_PERIOD_MS,
}

const qemu = findOnPath('qemu-system-x86_64')
// A real QEMU at rest (-S: vCPU stopped) has QEMU's own thread count; else a sleeping node.
const target = qemu
  ? spawn(
      qemu,
      ['-S', '-nodefaults', '-nographic', '-m', '64', '-accel', 'tcg', '-monitor', 'none', '-serial', 'none'],
      {
        stdio: ['ignore', 'ignore', 'inherit'],
      },
    )
  : spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' })
await new Promise((r) => setTimeout(r, 1000))
if (target.exitCode !== null) throw new Error(`target exited with ${target.exitCode}`)
const targetName = qemu ? 'qemu-system-x86_64 -S (at rest)' : 'sleeping node'

function findOnPath(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(`${dir}/${bin}`)) return `${dir}/${bin}`
  }
  return undefined
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** CPU ms this process used over `seconds`, while `during` runs. */
async function cpuMsOver(during?: () => () => void): Promise<{ cpuMs: number; wallMs: number }> {
  const stop = during?.()
  const u0 = process.cpuUsage()
  const t0 = performance.now()
  await sleep(seconds * 1000)
  const u = process.cpuUsage(u0)
  const wallMs = performance.now() - t0
  stop?.()
  return { cpuMs: (u.user + u.system) / 1000, wallMs }
}

interface Row {
  periodMs: number
  samplesPerSec: number
  /** % of one core used by this process while the monitor ran. */
  monitorPercentOfCore: number
  /** Same, with only an empty timer at the same period: the wake-up cost any sampler pays. */
  bareTimerPercentOfCore: number
  cpuUsPerSample: number
  threadsWatched: number
}

const pct = (r: { cpuMs: number; wallMs: number }) => (r.cpuMs / r.wallMs) * 100
const nothing = pct(await cpuMsOver())
const rows: Row[] = []
for (const periodMs of periods) {
  const bare = await cpuMsOver(() => {
    let timer = setTimeout(function again() {
      timer = setTimeout(again, periodMs)
    }, periodMs)
    return () => clearTimeout(timer)
  })
  const m = monitorProcess(target.pid!, { periodMs, baseline })
  const r = await cpuMsOver(() => {
    m.start()
    return () => m.stop()
  })
  const samples = m.stats.samples
  m.close()
  rows.push({
    periodMs,
    samplesPerSec: samples / (r.wallMs / 1000),
    monitorPercentOfCore: pct(r),
    bareTimerPercentOfCore: pct(bare),
    cpuUsPerSample: (r.cpuMs * 1000) / Math.max(1, samples),
    threadsWatched: readdirSync(`/proc/${target.pid}/task`).length,
  })
}
target.kill('SIGKILL')

const f = (x: number, d = 2) => x.toFixed(d)
console.log(
  `idle-monitor overhead: ${seconds} s per row on ${targetName}; nothing running: ${f(nothing)} % of a core`,
)
console.log('period ms | samples/s | monitor % of a core | bare timer % | CPU µs/sample | threads watched')
for (const r of rows) {
  const p = `${r.periodMs}${r.periodMs === DEFAULT_PERIOD_MS ? ' (default)' : ''}`
  console.log(
    [
      p.padStart(9),
      f(r.samplesPerSec, 0).padStart(9),
      f(r.monitorPercentOfCore).padStart(19),
      f(r.bareTimerPercentOfCore).padStart(12),
      f(r.cpuUsPerSample, 1).padStart(13),
      String(r.threadsWatched).padStart(15),
    ].join(' | '),
  )
}
console.log(
  JSON.stringify({
    bench: 'idle-sync/overhead',
    target: targetName,
    seconds,
    defaultPeriodMs: DEFAULT_PERIOD_MS,
    nothingPercentOfCore: nothing,
    rows,
  }),
)
