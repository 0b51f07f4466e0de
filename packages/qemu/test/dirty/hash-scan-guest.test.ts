// Hash-scan dirty tracking against a running redis guest: the collected set must be exactly the
// pages whose bytes changed in the RAM file (verified by comparing whole-file copies).
import { readFileSync } from 'node:fs'
import { PageHasher } from '@plover/vmsync'
import t from 'tap'
import { HashScanTracker } from '../../src/dirty/hash-scan-tracker.js'
import { requireQemu } from '../../src/testing/require-qemu.js'
import { bootRedisGuest, redisPipe } from '../fixtures/redis-guest.js'

const PAGE = 4096

function changedPages(a: Buffer, b: Buffer): number[] {
  const out: number[] = []
  for (let p = 0; p * PAGE < a.byteLength; p++) {
    if (!a.subarray(p * PAGE, (p + 1) * PAGE).equals(b.subarray(p * PAGE, (p + 1) * PAGE))) out.push(p)
  }
  return out
}

t.test('hash-scan finds exactly the pages a redis workload changed', async (t) => {
  const env = requireQemu(t)
  if (!env) return
  const { vm, port } = await bootRedisGuest(t, env)
  const size = (vm.config.memoryMiB ?? 256) * 1024 * 1024
  const hasher = new PageHasher({ threads: 2 })
  t.teardown(() => hasher.close())
  let paused = false
  let resumes = 0
  const tracker = new HashScanTracker({
    hasher,
    source: { kind: 'file', path: vm.paths.ramPath, offset: 0, size },
    isPaused: () => paused,
    changeStamp: () => resumes,
  })
  const pause = async () => {
    await vm.qmp.stop()
    paused = true
  }
  const resume = async () => {
    resumes++
    paused = false
    await vm.qmp.cont()
  }

  await pause()
  await tracker.reset()
  const scan = tracker.lastScan!
  t.comment(
    `first full scan (workers starting) of ${size >> 20} MiB: ${scan.durationMs.toFixed(1)} ms, ${(scan.bytesPerSecond / 1e9).toFixed(2)} GB/s`,
  )
  const before = readFileSync(vm.paths.ramPath)
  t.same(Array.from(await tracker.collect()), [], 'paused right after reset: no page changed')
  t.same(changedPages(before, readFileSync(vm.paths.ramPath)), [], 'and indeed the file is unchanged')

  await resume()
  const marker = `plover-marker-${process.pid}-`
  await redisPipe(
    port,
    Array.from({ length: 300 }, (_, i) => ['SET', `big:${i}`, `${marker}${i}:${'z'.repeat(4000)}`]),
  )
  await pause()
  const collected = Array.from(await tracker.collect())
  const warm = tracker.lastScan!
  t.comment(
    `warm full scan: ${warm.durationMs.toFixed(1)} ms, ${(warm.bytesPerSecond / 1e9).toFixed(2)} GB/s`,
  )
  const after = readFileSync(vm.paths.ramPath)
  const actual = changedPages(before, after)
  t.ok(actual.length > 300, `the workload changed ${actual.length} pages`)
  t.same(collected, actual, `collected ${collected.length} pages = the pages whose bytes changed`)
  const valuePage = Math.floor(after.indexOf(`${marker}299:`) / PAGE)
  t.ok(
    valuePage >= 0 && collected.includes(valuePage),
    `the page holding the last value (${valuePage}) is dirty`,
  )
  t.ok(tracker.currentHashes, 'the vector of this scan is available to the sync protocol')
  await resume()
})
