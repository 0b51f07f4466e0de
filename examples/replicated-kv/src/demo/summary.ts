// The end-of-demo table. Every number is a measurement: from the replicas' /metrics, or from
// the client (acknowledged writes, read-back, timings).
import { formatBytes, identicalPct, meanFullPauseMs, meanPauseMs } from './cluster-numbers.js'
import type { DemoResult } from './run-demo.js'

export function summaryRows(r: DemoResult): [string, string][] {
  const n = r.numbers
  const ms = (v: number | undefined) => (v === undefined ? 'n/a' : `${v} ms`)
  return [
    ['first primary (SIGKILLed)', `replica ${r.firstPrimary}`],
    ['new primary', r.newPrimary === undefined ? 'none' : `replica ${r.newPrimary}`],
    ['kill -> new leader elected', ms(r.electionMs)],
    ['kill -> client served again', ms(r.clientResumeMs)],
    ['spare started -> re-protected', ms(r.reprotectMs)],
    ['client operations', `${r.workload.sets} SET + ${r.workload.gets} GET (${r.reconnects} reconnects)`],
    ['slowest operation (incl. failover)', `${r.workload.maxOpMs} ms`],
    ['stale reads during the run', String(r.workload.staleReads)],
    ['acknowledged writes', String(r.acked)],
    ['read back from the new primary', `${r.checked - r.lost.length} of ${r.checked}`],
    ['LOST acknowledged writes', String(r.lost.length)],
    ['incremental syncs (+ full)', `${n.vsmrSyncs} (+${n.fullSyncs})`],
    ['dirty-union pages compared', String(n.unionPages)],
    ['identical pages (not sent)', `${n.identicalPages} (${identicalPct(n).toFixed(1)} %)`],
    ['bytes sent, incremental syncs', formatBytes(n.vsmrBytes)],
    [
      'Remus would have sent',
      `${formatBytes(n.remusBytes)}${n.vsmrBytes > 0 ? ` (${(n.remusBytes / n.vsmrBytes).toFixed(2)}x more)` : ''}`,
    ],
    ['pages pre-copied before full syncs', String(n.fullPrecopiedPages)],
    ['bytes sent, full syncs (paused step)', formatBytes(n.fullBytes)],
    ['primary pause, incremental sync', `avg ${meanPauseMs(n).toFixed(2)} ms`],
    [
      'primary pause, full sync',
      `avg ${meanFullPauseMs(n).toFixed(1)} ms (longest pause ${n.maxPauseMs.toFixed(1)} ms)`,
    ],
    ['failed syncs', String(n.syncFailures)],
    [
      'log compactions (at sync cuts)',
      `${n.compactions}; logs start at ${[...r.logStarts].map(([id, i]) => `${id}:${i}`).join(' ') || 'n/a'}`,
    ],
    ['clean shutdown (SIGTERM, exit 0)', r.cleanShutdown ? 'yes' : 'NO'],
    ['demo duration', `${(r.durationMs / 1000).toFixed(1)} s`],
  ]
}

export function formatSummary(r: DemoResult): string {
  const rows = summaryRows(r)
  const w = Math.max(...rows.map(([k]) => k.length))
  const v = Math.max(...rows.map(([, x]) => x.length))
  const line = `+${'-'.repeat(w + 2)}+${'-'.repeat(v + 2)}+`
  return [line, ...rows.map(([k, x]) => `| ${k.padEnd(w)} | ${x.padEnd(v)} |`), line].join('\n')
}
