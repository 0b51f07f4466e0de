// `pnpm start` (as root): the QEMU example end to end. See README.md.
import { Demo, type DemoResult } from './demo/run.js'

function summary(r: DemoResult): string {
  const c = r.checker
  const rows: Array<[string, string]> = [
    ['primary → backup', `${r.primaryId} → ${r.backupId}`],
    ['first (full) sync of the backup', `${(r.fullSyncMs / 1000).toFixed(1)} s`],
    ['syncs before the kill', String(r.syncsBeforeKill)],
    ['frames the backup released before the kill', String(r.backupReleasedBeforeKill)],
    [
      r.handedOverTo === undefined
        ? 'kill → backup elected (witness vote)'
        : 'SIGTERM → backup handed leadership',
      r.electedMs === undefined ? '—' : `${r.electedMs} ms`,
    ],
    ['kill → backup acting as primary', r.promotedMs === undefined ? '—' : `${r.promotedMs} ms`],
    [
      'checker outage (last ack before kill → first after)',
      r.clientOutageMs === undefined ? '—' : `${r.clientOutageMs} ms`,
    ],
    [
      'checker acknowledged SETs (before / after kill)',
      c ? `${c.acked} (${c.acksBeforeKill} / ${c.acksAfterKill})` : '—',
    ],
    ['… readable afterwards', c ? `${c.readable} (missing ${c.missingCount}, wrong ${c.wrongCount})` : '—'],
    [
      'checker TCP connection survived',
      c ? `${c.connectionSurvived ? 'yes' : `NO (${c.closedReason})`} (local port ${c.localPort})` : '—',
    ],
    [
      'kill → outputs protected again (spare 4 as backup)',
      r.reprotect
        ? `${(r.reprotect.protectedMs / 1000).toFixed(1)} s (full sync ${(r.reprotect.fullSyncMs / 1000).toFixed(1)} s after joining; voter: ${r.reprotect.voter ? 'yes' : 'no'})`
        : '—',
    ],
    [
      `second kill (${r.secondFailover ? `${r.secondFailover.victimId} → ${r.secondFailover.heirId}` : '--second-failover'}): elected / primary / checker outage`,
      r.secondFailover
        ? `${r.secondFailover.electedMs} / ${r.secondFailover.promotedMs} / ${r.secondFailover.clientOutageMs ?? '—'} ms`
        : '—',
    ],
    [
      '--hang: thaw → old primary stepped down / protects the new one',
      r.thawed ? `${r.thawed.steppedDownMs} / ${r.thawed.protectedMs} ms` : '—',
    ],
    [
      'redis-benchmark still running at the end (no connection error)',
      r.benchmark.runningAtEnd === undefined ? '—' : r.benchmark.runningAtEnd ? 'yes' : 'NO',
    ],
    ['redis-benchmark SET (last report)', r.benchmark.set || '—'],
    ['redis-benchmark GET (last report)', r.benchmark.get || '—'],
  ]
  const w = Math.max(...rows.map(([k]) => k.length))
  return rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n')
}

function verdictOk(r: DemoResult): boolean {
  const c = r.checker
  return (
    r.failedOver &&
    r.backupReleasedBeforeKill === 0 &&
    !!c &&
    c.connectionSurvived &&
    c.acked > 0 &&
    c.acksAfterKill > 0 &&
    c.readable === c.acked &&
    c.missingCount === 0 &&
    c.wrongCount === 0 &&
    (!wantSecond || r.secondFailover?.clientOutageMs !== undefined) &&
    (!process.argv.includes('--hang') || r.thawed !== undefined) &&
    (!process.argv.includes('--switchover') || r.handedOverTo === r.backupId)
  )
}

const wantSecond = process.argv.includes('--second-failover')
const demo = new Demo({
  failure: process.argv.includes('--hang')
    ? 'hang'
    : process.argv.includes('--switchover')
      ? 'switchover'
      : 'kill',
  noFailover: process.argv.includes('--no-failover'),
  rejoin: process.argv.includes('--restart') ? 'restart' : 'spare',
  secondFailover: wantSecond,
})
let signals = 0
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    signals++
    process.stdout.write(`\n${sig}: stopping and cleaning up…\n`)
    demo.abort(sig)
    if (signals === 1) {
      // If the run is stuck in a long await, clean up directly and exit.
      void demo.cleanup().then(() => process.exit(130))
    }
  })
}

try {
  const r = await demo.run()
  process.stdout.write(`\nSummary\n${summary(r)}\n`)
  for (const n of r.notDone) process.stdout.write(`  NOT DONE: ${n}\n`)
  const ok = verdictOk(r)
  process.stdout.write(
    ok
      ? '\nOK: failover without breaking the client connection; every acknowledged SET is readable.\n'
      : '\nFAILED: see above.\n',
  )
  process.exit(ok || !r.failedOver ? 0 : 1)
} catch (err) {
  process.stderr.write(`qemu-redis: ${(err as Error).message}\n`)
  await demo.cleanup()
  process.exit(1)
}
