// Cluster-wide numbers for the status line and the summary, summed over every replica's last
// scraped /metrics. A replica's counters are its own work as primary, so the sum covers the
// time before the failover (the dead primary's last scrape) and after it (the new primary).

import type { ReplicaProc } from './cluster.js'
import { metric } from './metrics-scrape.js'

export interface ClusterNumbers {
  /** Answers the replicas wrote to clients. */
  responses: number
  vsmrSyncs: number
  fullSyncs: number
  unionPages: number
  identicalPages: number
  divergentPages: number
  vsmrBytes: number
  remusBytes: number
  fullBytes: number
  /** Pages pre-copied before full syncs (while the primary ran). */
  fullPrecopiedPages: number
  pauseMs: number
  fullPauseMs: number
  maxPauseMs: number
  syncFailures: number
  /** Log compactions at sync cuts, all members (witness included). */
  compactions: number
}

export async function scrapeCluster(procs: Iterable<ReplicaProc>): Promise<ClusterNumbers> {
  const n: ClusterNumbers = {
    responses: 0,
    vsmrSyncs: 0,
    fullSyncs: 0,
    unionPages: 0,
    identicalPages: 0,
    divergentPages: 0,
    vsmrBytes: 0,
    remusBytes: 0,
    fullBytes: 0,
    fullPrecopiedPages: 0,
    pauseMs: 0,
    fullPauseMs: 0,
    maxPauseMs: 0,
    syncFailures: 0,
    compactions: 0,
  }
  const list = [...procs]
  // A restarted replica's counters start again from 0: its earlier processes count too.
  const maps = [...(await Promise.all(list.map((p) => p.scrape()))), ...list.flatMap((p) => p.earlierRuns)]
  for (const m of maps) {
    if (!m) continue
    const v = (name: string) => metric(m, `plover_replica_${name}`)
    n.responses += v('client_responses_total')
    n.vsmrSyncs += v('vsmr_syncs_total')
    n.fullSyncs += v('full_syncs_total')
    n.unionPages += v('union_pages_total')
    n.identicalPages += v('identical_pages_total')
    n.divergentPages += v('divergent_pages_total')
    n.vsmrBytes += v('vsmr_bytes_sent_total')
    n.remusBytes += v('remus_equivalent_bytes_total')
    n.fullBytes += v('full_sync_bytes_sent_total')
    n.fullPrecopiedPages += v('full_sync_precopied_pages_total')
    n.pauseMs += v('sync_pause_ms_total')
    n.fullPauseMs += v('full_sync_pause_ms_total')
    n.maxPauseMs = Math.max(n.maxPauseMs, v('sync_pause_max_ms'))
    n.syncFailures += v('sync_failures_total')
    n.compactions += v('log_compactions_total')
  }
  return n
}

export function identicalPct(n: ClusterNumbers): number {
  return n.unionPages === 0 ? 0 : (n.identicalPages / n.unionPages) * 100
}

/** Mean primary pause of the incremental syncs (full syncs copy the whole VM: shown apart). */
export function meanPauseMs(n: ClusterNumbers): number {
  return n.vsmrSyncs === 0 ? 0 : (n.pauseMs - n.fullPauseMs) / n.vsmrSyncs
}

export function meanFullPauseMs(n: ClusterNumbers): number {
  return n.fullSyncs === 0 ? 0 : n.fullPauseMs / n.fullSyncs
}

export function formatBytes(b: number): string {
  if (b >= 1e9) return `${(b / 1e9).toFixed(2)} GB`
  if (b >= 1e6) return `${(b / 1e6).toFixed(1)} MB`
  if (b >= 1e3) return `${(b / 1e3).toFixed(1)} kB`
  return `${Math.round(b)} B`
}
