// The QEMU example end to end with one failover: three replica processes (two QEMU guests running
// redis on taps on a bridge, a witness), a checker and redis-benchmark in the client namespace,
// kill -9 of the primary's QEMU and replica process. Asserts the backup took over, the checker's
// TCP connection survived, a spare replica re-protected the new primary (learner → full sync →
// voter), and every acknowledged SET is readable afterwards. While the load runs, the primary's
// GET /metrics is scraped once (consensus state, VM counters and vmsync's metrics). The second
// test restarts the killed replica instead of a spare, then kills the new primary as well: the
// restarted replica, synced in full and then incrementally, carries the checker's connection.
// The third freezes the primary (SIGSTOP) instead: thawed, it must step down and become the
// backup of the replica that replaced it, with no membership change.
//
// Skipped unless root + QEMU + guest image; FAILS instead under PLOVER_REQUIRE_QEMU=1.
import http from 'node:http'
import t, { type Test } from 'tap'
import { Demo, type DemoOptions, type DemoResult } from '../src/demo/run.js'
import { qemuEnvironment } from './qemu-environment.js'

t.test(
  'qemu-redis: kill -9 the primary, the client connection and every acknowledged SET survive',
  async (t) => {
    if (!qemuEnvironment(t)) return
    const lines: string[] = []
    // Each replica logs its HTTP endpoint; the poller below scrapes them until one is a primary
    // that has synced. (replicaLog replaces the Demo's own printing of warnings: done here.)
    const metricsPorts = new Map<number, number>()
    const replicaLog = (id: number, line: string) => {
      const m = /"msg":"HTTP endpoint listening".*"port":(\d+)/.exec(line)
      if (m) metricsPorts.set(id, Number(m[1]))
      if (/"level":"(warn|error)"/.test(line) || !line.startsWith('{'))
        lines.push(`  [replica ${id}] ${line}`)
    }
    let primaryMetrics: { id: number; text: string } | undefined
    let running = true
    const poller = (async () => {
      while (running && !primaryMetrics) {
        await new Promise((r) => setTimeout(r, 2000))
        for (const [id, port] of metricsPorts) {
          const text = await httpGet(port, '/metrics').catch(() => '')
          if (
            text.includes(`plover_replica_vm_primary{replica="${id}"} 1`) &&
            /^plover_vmsync_syncs_total\{[^}]*side="primary"[^}]*\} [1-9]/m.test(text)
          )
            primaryMetrics = { id, text }
        }
      }
    })()
    const demo = new Demo({
      replicaLog,
      loadBeforeKillS: 12,
      loadAfterTakeoverS: 6,
      benchClients: 2,
      // Small, so every member compacts its log in a short run and the spare joins from a snapshot.
      compactAfterEntries: 64,
      // Bounded: every wait fails once 4.5 minutes are spent, and cleanup still runs.
      deadlineMs: 270_000,
      print: (l) => lines.push(l),
    })
    t.teardown(() => demo.cleanup())
    const r = await demo
      .run()
      .catch((err: Error) => {
        t.comment(lines.join('\n'))
        throw err
      })
      .finally(() => (running = false))
    await poller
    t.comment(lines.join('\n'))
    t.ok(r.failedOver, 'the primary was killed')
    const pm = primaryMetrics
    t.ok(pm, "the primary's GET /metrics was scraped while it synced")
    if (pm) {
      t.equal(pm.id, r.primaryId, 'from the primary')
      t.match(pm.text, new RegExp(`^plover_replica_is_leader\\{replica="${pm.id}"\\} 1$`, 'm'), 'it leads')
      t.match(pm.text, /^plover_replica_term\{replica="\d+"\} [1-9]/m, 'consensus term')
      t.match(pm.text, /^plover_replica_commit_index\{replica="\d+"\} [1-9]/m, 'commit index')
      t.match(pm.text, /^plover_replica_outputs_protected\{replica="\d+"\} 1$/m, 'protected')
      t.match(pm.text, /^plover_vmsync_pause_ms_bucket\{/m, "vmsync's histograms")
      // CI builds @plover/mapped-file: guest RAM must be hashed through the mapping, not pread.
      t.match(
        pm.text,
        /^plover_replica_vm_hash_reads_mapped\{replica="\d+"\} 1$/m,
        'RAM scans read a mapping',
      )
      t.match(pm.text, /^process_resident_memory_bytes\{/m, 'process gauges')
    }
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
    const logs = r.logs ?? []
    t.comment(`logs: ${JSON.stringify(logs)}`)
    t.same(
      logs.map((l) => l.id).sort(),
      [r.backupId, 3, 4].sort(),
      'the new primary, the witness and the spare report their logs',
    )
    for (const l of logs)
      t.ok(l.firstIndex > 1, `replica ${l.id}'s log was compacted (starts at ${l.firstIndex})`)
    t.ok(
      logs.some((l) => l.compactions > 0 && l.id === r.backupId),
      'the new primary compacted its log itself',
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

function httpGet(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, timeout: 5000 }, (res) => {
      let body = ''
      res.on('data', (c) => (body += c))
      res.on('end', () => resolve(body))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
  })
}

/** A short bounded demo run (8 s of load before the failure, 4 s after), its output as comments. */
async function shortDemo(t: Test, o: DemoOptions): Promise<DemoResult> {
  const lines: string[] = []
  const demo = new Demo({
    loadBeforeKillS: 8,
    loadAfterTakeoverS: 4,
    benchClients: 2,
    deadlineMs: 270_000,
    print: (l) => lines.push(l),
    ...o,
  })
  t.teardown(() => demo.cleanup())
  const r = await demo.run().catch((err: Error) => {
    t.comment(lines.join('\n'))
    throw err
  })
  t.comment(lines.join('\n'))
  return r
}

/** The checker's verdict: its connection survived and every acknowledged SET reads back right. */
function checkerIntact(t: Test, r: DemoResult, connection: string): void {
  const c = r.checker
  t.ok(c?.connectionSurvived, `the checker's TCP connection survived ${connection}`)
  t.ok((c?.acksAfterKill ?? 0) > 0, `SETs were acknowledged after the failure (${c?.acksAfterKill})`)
  t.equal(c?.missingCount, 0, 'no acknowledged SET is missing')
  t.equal(c?.wrongCount, 0, 'no acknowledged SET has a wrong value')
  t.equal(c?.readable, c?.acked, 'every acknowledged SET is readable')
}

t.test(
  'qemu-redis: the killed replica restarts, re-protects the new primary, and takes over when that one is killed',
  async (t) => {
    if (!qemuEnvironment(t)) return
    const r = await shortDemo(t, { rejoin: 'restart', secondFailover: true, compactAfterEntries: 64 })
    t.ok(r.failedOver, 'the primary was killed and the backup took over')
    t.ok(r.reprotect?.voter, 'the restarted replica had its full sync and became a voter again')
    t.comment(`re-protection: ${JSON.stringify(r.reprotect)}; logs: ${JSON.stringify(r.logs)}`)
    t.ok(
      r.logs?.some((l) => l.id === r.primaryId),
      'the restarted replica reports its (reused, compacted) log',
    )
    const second = r.secondFailover
    t.ok(second, `the new primary was killed too (${JSON.stringify(second)})`)
    t.equal(second?.heirId, r.primaryId, 'the restarted replica took over, from its synced VM')
    t.ok(second?.clientOutageMs !== undefined, 'the checker got SETs acknowledged after the second kill')
    t.same(r.notDone, [], 'every step was done')
    checkerIntact(t, r, 'both failovers')
  },
)

t.test(
  'qemu-redis: a primary that hangs is replaced; thawed, it steps down and becomes the new backup',
  async (t) => {
    if (!qemuEnvironment(t)) return
    const r = await shortDemo(t, { failure: 'hang' })
    t.ok(r.promotedMs !== undefined, `the backup took over from the hung primary (${r.promotedMs} ms)`)
    t.ok(
      r.thawed,
      `thawed, the old primary stepped down and protects the new one (${JSON.stringify(r.thawed)})`,
    )
    t.same(r.notDone, [], 'every step was done')
    checkerIntact(t, r, 'the hang and the thaw')
  },
)

t.test(
  'qemu-redis: a SIGTERM to the primary hands leadership to its synced backup; the client connection survives',
  async (t) => {
    if (!qemuEnvironment(t)) return
    const r = await shortDemo(t, { failure: 'switchover', reprotect: false })
    t.equal(
      r.handedOverTo,
      r.backupId,
      `the stopping primary handed leadership to the backup (${r.backupId})`,
    )
    t.ok(r.promotedMs !== undefined, `the backup acts as primary (${r.promotedMs} ms after the SIGTERM)`)
    t.same(r.notDone, [], 'every step was done')
    checkerIntact(t, r, 'the switchover')
  },
)
