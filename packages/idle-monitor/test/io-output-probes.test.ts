import { mkdtempSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { BlockstatsProbe, sumQmpBlockstats } from '../src/probes/blockstats-probe.js'
import { outputSourceFromGuard } from '../src/probes/guard-stats-source.js'
import { OutputSourceProbe } from '../src/probes/output-probe.js'
import { ProcIoProbe } from '../src/probes/proc-io-probe.js'
import { ProcessGoneError } from '../src/probes/process-gone-error.js'
import { exited, killAndReap, SLEEPER, spawnNode, waitForLine } from './fixtures/children.js'

// Writes 4 MiB to argv[1] with fsync when told to ('w' on stdin is overkill; a timer is enough).
const WRITER = `
const fs = require('node:fs')
console.log('ready')
setTimeout(() => {
  const fd = fs.openSync(process.argv[1], 'w')
  fs.writeSync(fd, Buffer.alloc(4 << 20, 1))
  fs.fsyncSync(fd)
  fs.closeSync(fd)
  console.log('written')
  setInterval(() => {}, 1 << 30)
}, 200)`

t.test('/proc/PID/io sees a child write 4 MiB to disk', async (t) => {
  // Inside the package, not os.tmpdir(): a tmpfs /tmp never reaches the storage layer.
  const dir = mkdtempSync(join(fileURLToPath(new URL('..', import.meta.url)), '.io-probe-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const child = spawnNode(WRITER, [join(dir, 'blob')])
  t.teardown(() => killAndReap(child))
  await waitForLine(child, /ready/)
  const probe = new ProcIoProbe(child.pid!)
  const a = probe.sample()
  await waitForLine(child, /written/)
  const b = probe.sample()
  if (a.state !== 'ok' || b.state !== 'ok') throw new Error('io probe failed')
  t.ok(b.wrBytes - a.wrBytes >= 4 << 20, `write_bytes grew by ${b.wrBytes - a.wrBytes}`)
  t.ok(b.wrOps > a.wrOps, 'syscw grew')
  const c = probe.sample()
  t.equal(c.state === 'ok' && c.wrBytes, b.wrBytes, 'quiet afterwards')
})

t.test('/proc/PID/io of a killed process is gone', async (t) => {
  const child = spawnNode(SLEEPER)
  await waitForLine(child, /ready/)
  const probe = new ProcIoProbe(child.pid!)
  t.equal(probe.sample().state, 'ok')
  child.kill('SIGKILL')
  await exited(child)
  const s = probe.sample()
  t.equal(s.state, 'gone')
  if (s.state === 'gone') t.type(s.error, ProcessGoneError)
})

t.test('query-blockstats: summed over devices; a rejected query is an error value', async (t) => {
  const qmpReturn = [
    { device: 'd0', stats: { rd_bytes: 10, wr_bytes: 20, rd_operations: 1, wr_operations: 2 } },
    { device: 'd1', stats: { rd_bytes: 5, wr_bytes: 0, rd_operations: 1, wr_operations: 0 } },
  ]
  t.same(sumQmpBlockstats(qmpReturn), { rdBytes: 15, wrBytes: 20, rdOps: 2, wrOps: 2 })
  const ok = await new BlockstatsProbe(async () => sumQmpBlockstats(qmpReturn)).sample()
  t.same(ok, { state: 'ok', rdBytes: 15, wrBytes: 20, rdOps: 2, wrOps: 2 })
  const bad = await new BlockstatsProbe(() => Promise.reject(new Error('QMP closed'))).sample()
  t.equal(bad.state, 'error')
  if (bad.state === 'error') t.match(bad.error.message, /QMP closed/)
})

t.test('output source: values passed through; a throwing source is an error value', async (t) => {
  const src = { heldBytes: () => 100, oldestHeldAgeMs: () => 7, framesOut: () => 3 }
  t.same(new OutputSourceProbe(src).sample(), {
    state: 'ok',
    heldBytes: 100,
    oldestHeldAgeMs: 7,
    framesOut: 3,
  })
  const broken = new OutputSourceProbe({
    ...src,
    heldBytes: () => {
      throw new Error('guard closed')
    },
  })
  t.equal(broken.sample().state, 'error')
})

t.test('an output guard with the stats() shape of vmsync adapts to an output source', async (t) => {
  let held = 300
  const guard = { stats: () => ({ heldBytes: held, oldestHeldAgeMs: 12, emittedFrames: 9, heldFrames: 2 }) }
  const probe = new OutputSourceProbe(outputSourceFromGuard(guard))
  t.same(probe.sample(), { state: 'ok', heldBytes: 300, oldestHeldAgeMs: 12, framesOut: 9 })
  held = 0
  t.equal((probe.sample() as { heldBytes: number }).heldBytes, 0, 'read live, not copied once')
})
