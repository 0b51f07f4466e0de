// Real files in a temp dir (tmpfs in /dev/shm where guests keep their RAM, and the default tmpdir).
import { randomBytes } from 'node:crypto'
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { mapFile, mappedFileSupport } from '../src/index.js'

const PAGE = 4096

t.test('the native part is built', async (t) => {
  const s = mappedFileSupport()
  t.ok(s.available, s.available ? 'available' : s.reason)
})

for (const base of ['/dev/shm', tmpdir()]) {
  t.test(`maps a file under ${base}`, async (t) => {
    const dir = mkdtempSync(join(base, 'plover-mapped-file-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const path = join(dir, 'ram')
    const content = randomBytes(16 * PAGE)
    writeFileSync(path, content)

    const whole = mapFile(path, 0, content.length)
    t.teardown(() => whole.close())
    t.equal(whole.bytes.length, content.length)
    t.ok(Buffer.from(whole.bytes).equals(content), 'same bytes as the file')

    const part = mapFile(path, 4 * PAGE, 3 * PAGE)
    t.ok(Buffer.from(part.bytes).equals(content.subarray(4 * PAGE, 7 * PAGE)), 'a page-aligned range')

    // Another writer (QEMU, in production) changes the file: the mapping shows it without remapping.
    const fd = openSync(path, 'r+')
    writeSync(fd, Buffer.from('written through another descriptor'), 0, undefined, 5 * PAGE + 7)
    closeSync(fd)
    t.equal(
      Buffer.from(part.bytes.subarray(PAGE + 7, PAGE + 7 + 34)).toString(),
      'written through another descriptor',
      'a later write shows through',
    )

    // QEMU deletes a RAM file it is done with; a mapping keeps the memory readable.
    unlinkSync(path)
    t.equal(whole.bytes[5 * PAGE + 7], 'w'.charCodeAt(0), 'still readable after unlink')

    part.close()
    t.equal(part.closed, true)
    t.equal(part.bytes.length, 0, 'every view is empty once closed')
    t.doesNotThrow(() => part.close(), 'close is idempotent')
  })
}

t.test('bad arguments and files give errors, not signals', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'plover-mapped-file-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'short')
  writeFileSync(path, Buffer.alloc(2 * PAGE))
  mkdirSync(join(dir, 'sub'))
  t.throws(() => mapFile(join(dir, 'missing'), 0, PAGE), /map .*missing: open: No such file or directory/)
  t.throws(
    () => mapFile(path, 0, 3 * PAGE),
    /map .*short: file of 8192 bytes, 12288 needed/,
    'a file shorter than the mapping (SIGBUS otherwise)',
  )
  t.throws(() => mapFile(path, PAGE, 2 * PAGE), /8192 bytes, 12288 needed \(offset 4096/, 'offset counts')
  t.throws(() => mapFile(path, 100, PAGE), /offset 100 is not a multiple of the page size/)
  t.throws(() => mapFile(path, 0, 0), /length > 0/)
  t.throws(() => mapFile(path, -4096, PAGE), /offset must be an integer >= 0/)
  t.throws(() => mapFile(path, 0, 1.5), /length > 0/)
  t.throws(() => mapFile(join(dir, 'sub'), 0, PAGE), /not a regular file/)
  const ok = mapFile(path, 0, 2 * PAGE)
  t.equal(ok.bytes.length, 2 * PAGE, 'the same file maps at its real size')
  ok.close()
})

t.test('mappings opened and closed leave no address space or descriptors behind', async (t) => {
  const dir = mkdtempSync(join('/dev/shm', 'plover-mapped-file-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'ram')
  writeFileSync(path, Buffer.alloc(64 << 20, 1))
  const vmSizeKiB = () => Number(/^VmSize:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))![1])
  const fds = () => readdirSync('/proc/self/fd').length
  const before = { vm: vmSizeKiB(), fds: fds() }
  for (let i = 0; i < 200; i++) {
    const m = mapFile(path, 0, 64 << 20)
    if (m.bytes[(i * PAGE) % (64 << 20)] !== 1) t.fail(`mapping ${i} reads wrong data`)
    m.close()
  }
  // Without the unmap in close() the address space would grow by 200 × 64 MiB = 12.5 GiB.
  const grownMiB = (vmSizeKiB() - before.vm) / 1024
  t.ok(grownMiB < 1024, `address space grew by ${grownMiB.toFixed(0)} MiB over 200 map/close cycles`)
  t.equal(fds(), before.fds, 'no descriptor left open')
})
