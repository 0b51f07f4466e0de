// The soft-dirty tracker against a fake /proc built from recorded data (the development kernel
// lacks CONFIG_MEM_SOFT_DIRTY, so the real path is unverified here; see soft-dirty-probe tests).
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { PAGEMAP_ENTRY_BYTES } from '../../src/dirty/pagemap.js'
import { parseMaps } from '../../src/dirty/proc-maps.js'
import { SoftDirtyTracker } from '../../src/dirty/soft-dirty-tracker.js'
import { VmNotPausedError } from '../../src/memory/errors.js'

const fixture = (name: string) => new URL(`../fixtures/${name}`, import.meta.url)
const RAM = '/dev/shm/rec-test.ram'
const PID = 4242

function fakeProc(dir: string, dirtyPages: number[]): void {
  const mapsText = readFileSync(fixture('qemu-maps.txt'), 'utf8')
  const ram = parseMaps(mapsText).find((e) => e.path === RAM)!
  const slice = Buffer.from(readFileSync(fixture('qemu-ram-pagemap.bin')))
  for (const p of dirtyPages) slice[p * PAGEMAP_ENTRY_BYTES + 6] |= 0x80
  const proc = join(dir, String(PID))
  mkdirSync(proc, { recursive: true })
  writeFileSync(join(proc, 'maps'), mapsText)
  writeFileSync(join(proc, 'clear_refs'), '')
  // A sparse file with the slice where the kernel's pagemap has it: at vaddr/4096*8.
  const fd = openSync(join(proc, 'pagemap'), 'w')
  writeSync(fd, slice, 0, slice.byteLength, (ram.start / 4096) * PAGEMAP_ENTRY_BYTES)
  closeSync(fd)
}

t.test('collects the soft-dirty pages of the RAM mapping, ascending', async (t) => {
  const dir = t.testdir()
  const dirty = [0, 5, 6, 7, 9000, 16383]
  fakeProc(dir, dirty)
  let paused = true
  const tracker = await SoftDirtyTracker.open({
    pid: PID,
    ramPath: RAM,
    size: 64 << 20,
    isPaused: () => paused,
    procRoot: dir,
  })
  t.teardown(() => tracker.close())
  t.same(Array.from(await tracker.collect()), dirty)
  await tracker.reset()
  t.equal(readFileSync(join(dir, String(PID), 'clear_refs'), 'utf8'), '4', 'reset clears soft-dirty bits')
  paused = false
  await t.rejects(tracker.collect(), VmNotPausedError)
  await t.rejects(tracker.reset(), VmNotPausedError)
})

t.test('a RAM window at an offset maps to guest page numbers', async (t) => {
  const dir = t.testdir()
  fakeProc(dir, [3, 4, 100])
  const tracker = await SoftDirtyTracker.open({
    pid: PID,
    ramPath: RAM,
    ramOffset: 4 * 4096,
    size: 32 << 20,
    isPaused: () => true,
    procRoot: dir,
  })
  t.teardown(() => tracker.close())
  t.same(Array.from(await tracker.collect()), [0, 96], 'file page 4 is guest page 0; page 3 is outside')
})

t.test('refuses a process that does not map the file', async (t) => {
  const dir = t.testdir()
  fakeProc(dir, [])
  await t.rejects(
    SoftDirtyTracker.open({
      pid: PID,
      ramPath: '/dev/shm/nope',
      size: 4096,
      isPaused: () => true,
      procRoot: dir,
    }),
    /mapped shared only up to/,
  )
})
