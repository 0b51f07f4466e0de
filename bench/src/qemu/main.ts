// Costs of driving stock QEMU 7.2 (TCG) from Node: guest boot to redis-ready, QMP-ready time of a
// primary and of a standby (-incoming defer), stop/cont round trips, clean shutdown, guest image
// cache check. Every number is measured in this run; the load average is recorded beside them
// because TCG timings scale with how busy the host is.
//
//   cd bench && pnpm qemu [--boots 3] [--pauses 100] [--standbys 5]
//
// Needs @plover/qemu built and the guest image (node packages/qemu/dist/guest/cli.js build).
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import {
  buildGuestImage,
  GUEST_READY_MARKER,
  guestBoot,
  launch,
  standbyConfig,
  type VmConfig,
} from '@plover/qemu'

const { values } = parseArgs({
  options: {
    boots: { type: 'string', default: '3' },
    pauses: { type: 'string', default: '100' },
    standbys: { type: 'string', default: '5' },
  },
})
const BOOTS = Number(values.boots)
const PAUSES = Number(values.pauses)
const STANDBYS = Number(values.standbys)

interface Stats {
  n: number
  min: number
  p50: number
  p95: number
  max: number
  mean: number
}
function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b)
  const at = (p: number) => s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
  return {
    n: s.length,
    min: s[0],
    p50: at(50),
    p95: at(95),
    max: s[s.length - 1],
    mean: s.reduce((a, b) => a + b, 0) / s.length,
  }
}

const load1 = () => Number(loadavg()[0].toFixed(2))
const loadBefore = load1()

const cache = await buildGuestImage()
const image = cache.image
const base = (name: string): VmConfig => ({
  name,
  boot: guestBoot(image, { ip: '10.0.2.15/24', gateway: '10.0.2.2' }),
  memoryMiB: 256,
  cpus: 1,
  // Same device set as a replica (virtio-net + the four redirectors), user backend: no taps needed.
  nic: { kind: 'user', redirectors: true },
})

const bootToReady: number[] = []
const launchToQmp: number[] = []
const shutdown: number[] = []
const stopRtt: number[] = []
const contRtt: number[] = []
const statusRtt: number[] = []
for (let i = 0; i < BOOTS; i++) {
  const t0 = performance.now()
  const vm = await launch(base(`bench-${process.pid}-${i}`))
  launchToQmp.push(performance.now() - t0)
  try {
    await vm.waitForSerial(new RegExp(GUEST_READY_MARKER), 180_000)
    bootToReady.push(performance.now() - t0)
    if (i === 0) {
      for (let k = 0; k < PAUSES; k++) {
        let a = performance.now()
        await vm.qmp.stop()
        stopRtt.push(performance.now() - a)
        a = performance.now()
        await vm.qmp.queryStatus()
        statusRtt.push(performance.now() - a)
        a = performance.now()
        await vm.qmp.cont()
        contRtt.push(performance.now() - a)
      }
    }
  } finally {
    const a = performance.now()
    await vm.stop({ removeRam: true })
    shutdown.push(performance.now() - a)
  }
}

const standbyToQmp: number[] = []
const primaryCfg = base(`bench-${process.pid}-p`)
for (let i = 0; i < STANDBYS; i++) {
  const cfg = standbyConfig(primaryCfg, {
    name: `bench-${process.pid}-s${i}`,
    ramPath: `/dev/shm/bench-${process.pid}-s.ram`,
  })
  const t0 = performance.now()
  const vm = await launch(cfg)
  standbyToQmp.push(performance.now() - t0)
  await vm.stop({ removeRam: i === STANDBYS - 1 })
}

const rows: Array<[string, Stats]> = [
  ['boot → PLOVER-GUEST-READY (ms)', stats(bootToReady)],
  ['launch → QMP ready, booting VM (ms)', stats(launchToQmp)],
  ['launch → QMP ready, standby -incoming defer (ms)', stats(standbyToQmp)],
  ['QMP stop round trip (ms)', stats(stopRtt)],
  ['QMP cont round trip (ms)', stats(contRtt)],
  ['QMP query-status round trip (ms)', stats(statusRtt)],
  ['stop(): quit → process exit + cleanup (ms)', stats(shutdown)],
]
const f = (x: number) => x.toFixed(x < 10 ? 2 : 0).padStart(8)
console.log(
  `${'measure'.padEnd(50)} ${'n'.padStart(4)} ${'min'.padStart(8)} ${'p50'.padStart(8)} ${'p95'.padStart(8)} ${'max'.padStart(8)}`,
)
for (const [name, s] of rows) {
  console.log(`${name.padEnd(50)} ${String(s.n).padStart(4)} ${f(s.min)} ${f(s.p50)} ${f(s.p95)} ${f(s.max)}`)
}
console.log(`guest image cache check (no-op build): ${cache.durationMs.toFixed(0)} ms, built=${cache.built}`)

const qemuVersion = execFileSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).split('\n')[0]
const result = {
  bench: 'qemu',
  date: new Date().toISOString(),
  node: process.version,
  qemu: qemuVersion,
  accel: 'tcg',
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: cpus().length,
  loadAverage1m: { before: loadBefore, after: load1() },
  guest: {
    kernel: `${image.manifest.kernelPackage} ${image.manifest.kernelVersion}`,
    redis: image.manifest.redisVersion,
    initramfsBytes: image.manifest.initramfsBytes,
    memoryMiB: 256,
    cpus: 1,
    nic: 'virtio-net-pci, user backend, 4 filter-redirectors',
  },
  guestImageCacheCheckMs: cache.durationMs,
  guestImageBuilt: cache.built,
  bootToReadyMs: stats(bootToReady),
  launchToQmpReadyMs: stats(launchToQmp),
  standbyLaunchToQmpReadyMs: stats(standbyToQmp),
  stopRoundTripMs: stats(stopRtt),
  contRoundTripMs: stats(contRtt),
  queryStatusRoundTripMs: stats(statusRtt),
  shutdownMs: stats(shutdown),
}
const out = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'results', 'qemu.json')
mkdirSync(dirname(out), { recursive: true })
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`)
console.log(`wrote ${out}`)
