// The QEMU example end to end with one failover: three replica processes (two QEMU guests running
// redis on taps on a bridge, a witness), a checker and redis-benchmark in the client namespace,
// kill -9 of the primary's QEMU and replica process. Asserts the backup took over, the checker's
// TCP connection survived, a spare replica re-protected the new primary (learner → full sync →
// voter), and every acknowledged SET is readable afterwards.
//
// Skipped unless root + QEMU + guest image; FAILS instead under PLOVER_REQUIRE_QEMU=1.
import t from 'tap'
import { unavailableReason } from '../src/demo/environment.js'
import { Demo } from '../src/demo/run.js'

t.test(
  'qemu-redis: kill -9 the primary, the client connection and every acknowledged SET survive',
  async (t) => {
    // Same contract as @plover/qemu's requireQemu (not imported: its testing helpers are moving to a
    // subpath export), plus root and redis-tools.
    const missing = unavailableReason({ needImage: true })
    if (missing) {
      if (process.env.PLOVER_REQUIRE_QEMU === '1') t.fail(`PLOVER_REQUIRE_QEMU=1 but ${missing}`)
      else t.plan(0, `skipped: ${missing}`)
      return
    }
    const lines: string[] = []
    const demo = new Demo({
      loadBeforeKillS: 12,
      loadAfterTakeoverS: 6,
      benchClients: 2,
      // Bounded: every wait fails once 4.5 minutes are spent, and cleanup still runs.
      deadlineMs: 270_000,
      print: (l) => lines.push(l),
    })
    t.teardown(() => demo.cleanup())
    const r = await demo.run().catch((err: Error) => {
      t.comment(lines.join('\n'))
      throw err
    })
    t.comment(lines.join('\n'))
    t.ok(r.failedOver, 'the primary was killed')
    t.equal(
      r.backupReleasedBeforeKill,
      0,
      "the backup's guest outputs never reached the network before the kill",
    )
    t.ok(r.syncsBeforeKill > 1, `syncs ran while the load was on (${r.syncsBeforeKill})`)
    t.ok(
      r.electedMs !== undefined && r.promotedMs !== undefined,
      'the backup was elected and acts as primary',
    )
    t.comment(
      `takeover: elected ${r.electedMs} ms, primary ${r.promotedMs} ms, client outage ${r.clientOutageMs} ms`,
    )
    t.ok(r.reprotect, 'the spare joined as the new backup and the primary is protected again')
    t.ok(r.reprotect?.voter, 'the spare became a voter after its full sync')
    t.comment(`re-protection: ${JSON.stringify(r.reprotect)}`)
    t.ok(
      r.benchmark.runningAtEnd,
      'both redis-benchmark runs were still running after the failover (no connection error)',
    )
    const c = r.checker
    t.ok(c, 'the checker reported')
    if (!c) return
    t.ok(c.connectionSurvived, `the checker's TCP connection survived (${c.closedReason ?? 'open'})`)
    t.ok(c.acksBeforeKill > 0, 'SETs were acknowledged before the kill')
    t.ok(c.acksAfterKill > 0, 'SETs were acknowledged after the kill, on the same connection')
    t.equal(c.missingCount, 0, 'no acknowledged SET is missing')
    t.equal(c.wrongCount, 0, 'no acknowledged SET has a wrong value')
    t.equal(c.readable, c.acked, 'every acknowledged SET is readable')
  },
)
