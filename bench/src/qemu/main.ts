// Costs of driving stock QEMU 7.2 (TCG) from Node: guest boot to redis-ready, QMP-ready time of a
// primary and of a standby (-incoming defer), stop/cont round trips, clean shutdown, guest image
// cache check, device-state transfer (direct into a standby, and relayed through Node as bytes:
// time and stream size), and RAM hash-scan throughput (warm, vmsync's PageHasher over the RAM
// file) with a plain file read of the same bytes in the same run as the anchor. Every number is
// measured in this run; the load average is recorded beside them because TCG timings scale with
// how busy the host is.
//
//   cd bench && pnpm qemu [--boots 3] [--pauses 100] [--standbys 5] [--transfers 5] [--scans 5]
//
// Needs @plover/qemu built and the guest image (node packages/qemu/dist/guest/cli.js build).
import { execFileSync } from 'node:child_process'
import { closeSync, mkdirSync, openSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import {
  buildGuestImage,
  exportDeviceState,
  GUEST_READY_MARKER,
  guestBoot,
  HashScanTracker,
  importDeviceState,
  launch,
  migrateToStandby,
  type QemuProcess,
  standbyConfig,
  type VmConfig,
} from '@plover/qemu'
import { HASH_BYTES, type MemorySource, PageHasher } from '@plover/vmsync'

const { values } = parseArgs({
  options: {
    boots: { type: 'string', default: '3' },
    pauses: { type: 'string', default: '100' },
    standbys: { type: 'string', default: '5' },
    transfers: { type: 'string', default: '5' },
    scans: { type: 'string', default: '5' },
  },
})
const TRANSFERS = Number(values.transfers)
const SCANS = Number(values.scans)
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

const MEMORY_MIB = 256
const RAM_BYTES = MEMORY_MIB * 1024 * 1024
const load1 = () => Number(loadavg()[0].toFixed(2))
const loadBefore = load1()

const cache = await buildGuestImage()
const image = cache.image
const base = (name: string): VmConfig => ({
  name,
  boot: guestBoot(image, { ip: '10.0.2.15/24', gateway: '10.0.2.2' }),
  memoryMiB: MEMORY_MIB,
  cpus: 1,
  // Same device set as a replica (virtio-net + the four redirectors), user backend: no taps needed.
  nic: { kind: 'user', redirectors: true },
})

/** Copies one RAM file over another in place (a waiting standby already maps the destination). */
function copyRam(from: string, to: string, buf: Buffer): void {
  const src = openSync(from, 'r')
  const dst = openSync(to, 'r+')
  try {
    for (let pos = 0; pos < RAM_BYTES; pos += buf.byteLength) {
      const n = readSync(src, buf, 0, Math.min(buf.byteLength, RAM_BYTES - pos), pos)
      writeSync(dst, buf, 0, n, pos)
    }
  } finally {
    closeSync(src)
    closeSync(dst)
  }
}

const directMs: number[] = []
const directQemuMs: number[] = []
const directBytes: number[] = []
const exportMs: number[] = []
const importMs: number[] = []
const relayedMs: number[] = []
const relayedBytes: number[] = []

/**
 * Device-state transfers out of the booted primary, each into a fresh standby mapping its own
 * (backup) RAM file, RAM copied file to file first (not timed: the sync protocol's page transfer).
 * direct = migrateToStandby; relayed = exportDeviceState to Node's socket + importDeviceState.
 */
async function measureTransfers(vm: QemuProcess): Promise<void> {
  const backupRam = `/dev/shm/bench-${process.pid}-backup.ram`
  const copyBuf = Buffer.allocUnsafe(16 << 20)
  try {
    for (let k = 0; k < TRANSFERS; k++) {
      for (const mode of ['direct', 'relayed'] as const) {
        const standby = await launch(
          standbyConfig(vm.config, { name: `bench-${process.pid}-t${k}${mode[0]}`, ramPath: backupRam }),
        )
        try {
          await vm.qmp.stop()
          copyRam(vm.paths.ramPath, backupRam, copyBuf)
          if (mode === 'direct') {
            const s = await migrateToStandby(vm.qmp, standby.qmp, {
              socketPath: join(vm.paths.runDir, `mig-${k}.sock`),
            })
            directMs.push(s.durationMs)
            directBytes.push(s.streamBytes)
            if (s.qemuTotalTimeMs !== undefined) directQemuMs.push(s.qemuTotalTimeMs)
          } else {
            const { state, stats: out } = await exportDeviceState(vm.qmp, {
              socketPath: join(vm.paths.runDir, `exp-${k}.sock`),
            })
            const into = await importDeviceState(standby.qmp, state, {
              socketPath: join(standby.paths.runDir, 'incoming.sock'),
            })
            exportMs.push(out.durationMs)
            importMs.push(into.durationMs)
            relayedMs.push(out.durationMs + into.durationMs)
            relayedBytes.push(state.byteLength)
          }
          const status = (await standby.qmp.queryStatus()).status
          if (status !== 'paused') throw new Error(`standby ended ${status}, expected paused`)
        } finally {
          await standby.stop()
          await vm.qmp.cont()
        }
      }
    }
  } finally {
    rmSync(backupRam, { force: true })
  }
}

const readGBps: number[] = []
const hash2GBps: number[] = []
const hash1GBps: number[] = []
const trackerGBps: number[] = []
const gbps = (ms: number) => RAM_BYTES / 1e9 / (ms / 1000)

/**
 * Warm throughput over the paused guest's RAM file: a plain positional read into one reused
 * 16 MiB buffer (the anchor), PageHasher.hash(all) with 2 and 1 threads, and HashScanTracker.collect
 * (hash every page + diff against the last vector). One untimed pass of each first.
 */
async function measureScans(vm: QemuProcess): Promise<void> {
  await vm.qmp.stop()
  const source: MemorySource = { kind: 'file', path: vm.paths.ramPath, offset: 0, size: RAM_BYTES }
  const buf = Buffer.allocUnsafe(16 << 20)
  const readAll = () => {
    const fd = openSync(vm.paths.ramPath, 'r')
    try {
      for (let pos = 0; pos < RAM_BYTES; pos += buf.byteLength) readSync(fd, buf, 0, buf.byteLength, pos)
    } finally {
      closeSync(fd)
    }
  }
  const hashers = [new PageHasher({ threads: 2 }), new PageHasher({ threads: 1 })] as const
  try {
    const out = Buffer.alloc((RAM_BYTES / 4096) * HASH_BYTES)
    const tracker = new HashScanTracker({ hasher: hashers[0], source, isPaused: () => true })
    readAll()
    for (const h of hashers) await h.hash(source, 'all', out)
    await tracker.reset()
    for (let i = 0; i < SCANS; i++) {
      let a = performance.now()
      readAll()
      readGBps.push(gbps(performance.now() - a))
      a = performance.now()
      await hashers[0].hash(source, 'all', out)
      hash2GBps.push(gbps(performance.now() - a))
      a = performance.now()
      await hashers[1].hash(source, 'all', out)
      hash1GBps.push(gbps(performance.now() - a))
      a = performance.now()
      const dirty = await tracker.collect()
      trackerGBps.push(gbps(performance.now() - a))
      if (dirty.length !== 0) throw new Error(`paused guest: ${dirty.length} pages changed`)
    }
  } finally {
    await Promise.all(hashers.map((h) => h.close()))
    await vm.qmp.cont()
  }
}

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
      await measureScans(vm)
      await measureTransfers(vm)
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
  ['device state, direct migrateToStandby (ms)', stats(directMs)],
  ['  … QEMU total-time of that migration (ms)', stats(directQemuMs)],
  ['  … ram.transferred (KB)', stats(directBytes.map((b) => b / 1000))],
  ['device state, relayed: export + import (ms)', stats(relayedMs)],
  ['  … exportDeviceState → bytes in Node (ms)', stats(exportMs)],
  ['  … importDeviceState into standby (ms)', stats(importMs)],
  ['  … stream size (KB)', stats(relayedBytes.map((b) => b / 1000))],
  [`plain file read, ${MEMORY_MIB} MiB RAM file (GB/s)`, stats(readGBps)],
  ['PageHasher.hash(all), 2 threads (GB/s)', stats(hash2GBps)],
  ['PageHasher.hash(all), 1 thread (GB/s)', stats(hash1GBps)],
  ['HashScanTracker.collect, 2 threads (GB/s)', stats(trackerGBps)],
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
    memoryMiB: MEMORY_MIB,
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
  deviceState: {
    note: 'fresh standby per transfer, RAM copied file to file first (untimed); x-ignore-shared',
    directMs: stats(directMs),
    directQemuTotalTimeMs: stats(directQemuMs),
    directRamTransferredBytes: stats(directBytes),
    relayedMs: stats(relayedMs),
    relayedExportMs: stats(exportMs),
    relayedImportMs: stats(importMs),
    relayedStreamBytes: stats(relayedBytes),
  },
  ramScan: {
    note: `warm, ${MEMORY_MIB} MiB RAM file of the paused guest, same run; GB/s = 1e9 bytes/s`,
    plainReadGBps: stats(readGBps),
    pageHasher2ThreadsGBps: stats(hash2GBps),
    pageHasher1ThreadGBps: stats(hash1GBps),
    hashScanTrackerCollect2ThreadsGBps: stats(trackerGBps),
  },
}
const out = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'results', 'qemu.json')
mkdirSync(dirname(out), { recursive: true })
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`)
console.log(`wrote ${out}`)
