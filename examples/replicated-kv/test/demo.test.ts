// The simulated example end to end, as CI runs it: real replica processes on loopback, a real
// client, SIGKILL of the primary, failover, re-protection by a spare, read-back of every
// acknowledged write. A shorter workload than `npm run demo`, same orchestration.
import { Writable } from 'node:stream'
import t from 'tap'
import { type DemoOptions, runDemo } from '../src/demo/run-demo.js'
import { StatusLine } from '../src/demo/status-line.js'
import { formatSummary } from '../src/demo/summary.js'

/** The CI-sized run (8 s of load, 16 MiB VMs, logs compacted every 200 records) and its output. */
async function shortDemo(over: Partial<DemoOptions> = {}) {
  const lines: string[] = []
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk).trimEnd())
      cb()
    },
  })
  const r = await runDemo({
    workloadMs: 8000,
    workers: 16,
    vmPages: 4096,
    // Small, so every member compacts in a short run and the rejoining replica gets a snapshot.
    compactAfterEntries: 200,
    status: new StatusLine(sink, 2000),
    ...over,
  })
  return { r, lines }
}

t.test('primary SIGKILLed under load: failover, re-protection, no acknowledged write lost', async (t) => {
  const started = Date.now()
  const { r, lines } = await shortDemo()
  t.comment(lines.join('\n'))
  t.comment(formatSummary(r))

  t.ok(
    r.newPrimary !== undefined && r.newPrimary !== r.firstPrimary,
    `failover: ${r.firstPrimary} -> ${r.newPrimary}`,
  )
  t.ok(r.electionMs !== undefined && r.electionMs < 10_000, `new leader within 10 s (${r.electionMs} ms)`)
  t.ok(r.acked > 100, `the client got writes acknowledged (${r.acked})`)
  t.equal(r.checked, r.acked, 'every acknowledged write was read back')
  t.same(r.lost, [], 'no acknowledged write lost')
  t.equal(r.workload.staleReads, 0, 'no GET returned anything but the acknowledged value')
  t.equal(r.workload.failed, 0, 'no client operation failed for good')
  t.ok(r.numbers.vsmrSyncs > 0, `incremental syncs happened (${r.numbers.vsmrSyncs})`)
  t.ok(r.numbers.identicalPages > 0, `identical pages were found and not sent (${r.numbers.identicalPages})`)
  t.ok(r.numbers.fullSyncs >= 2, `full syncs: initial backup + re-protection (${r.numbers.fullSyncs})`)
  t.ok(r.reprotectMs !== undefined, `the spare re-protected the primary (${r.reprotectMs} ms)`)
  t.ok(
    r.numbers.fullPrecopiedPages > 0,
    `the spare's missing pages were pre-copied while the primary ran (${r.numbers.fullPrecopiedPages})`,
  )
  t.ok(r.numbers.compactions >= 3, `the logs were compacted at sync cuts (${r.numbers.compactions} times)`)
  t.equal(r.logStarts.size, 3, 'new primary, witness and spare report their logs')
  for (const [id, first] of r.logStarts) t.ok(first > 1, `replica ${id}'s log starts at ${first}, not 1`)
  t.ok(r.cleanShutdown, 'surviving replicas shut down cleanly on SIGTERM')
  t.ok(Date.now() - started < 110_000, 'bounded in time')
})

t.test('the killed primary restarts on its old data directory and re-protects the new one', async (t) => {
  const { r, lines } = await shortDemo({ rejoin: 'restart' })
  t.comment(lines.join('\n'))
  t.comment(formatSummary(r))
  t.equal(r.spare, r.firstPrimary, 'the killed replica itself came back')
  t.ok(r.newPrimary !== undefined && r.newPrimary !== r.firstPrimary, 'failover happened')
  t.ok(r.reprotectMs !== undefined, `it re-protected the new primary (${r.reprotectMs} ms)`)
  t.ok(r.acked > 100, `writes were acknowledged (${r.acked})`)
  t.equal(r.checked, r.acked, 'every acknowledged write was read back')
  t.same(r.lost, [], 'no acknowledged write lost')
  t.equal(r.workload.staleReads, 0, 'no stale read')
  t.ok(r.logStarts.has(r.firstPrimary), 'the restarted replica reports its log')
  t.ok(r.numbers.fullSyncs >= 2, `full syncs: initial backup + re-protection (${r.numbers.fullSyncs})`)
  t.ok(r.cleanShutdown, 'every live replica, the restarted one included, shuts down cleanly')
})
