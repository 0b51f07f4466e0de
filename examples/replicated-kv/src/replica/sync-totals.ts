// Running totals over the primary's sync reports: what the demo's status line and summary show.
// WHY our own totals and not only vmsync's histograms: incremental (VSMR) and full syncs must be
// kept apart (one full sync of a 64 MiB VM dwarfs thousands of incremental ones), and the
// "Remus would have sent" figure needs the primary's own dirty set per sync.
import { isFullSync, type SyncReport } from '@plover/vmsync'
import type { Sample } from './prom-text.js'

export class SyncTotals {
  vsmrSyncs = 0
  fullSyncs = 0
  unionPages = 0
  identicalPages = 0
  divergentPages = 0
  /** Sync-link bytes the primary sent in incremental syncs. */
  vsmrBytesSent = 0
  /** What Remus would have sent for the same syncs: every page the primary dirtied + device state. */
  remusBytes = 0
  fullBytesSent = 0
  /** Pages pre-copied (while the primary ran) before full syncs. */
  fullPrecopiedPages = 0
  pauseMs = 0
  fullPauseMs = 0
  maxPauseMs = 0
  failures = 0

  constructor(private readonly pageSize: number) {}

  observe(r: SyncReport): void {
    if (r.side !== 'primary') return
    this.pauseMs += r.pauseMs
    this.maxPauseMs = Math.max(this.maxPauseMs, r.pauseMs)
    if (isFullSync(r.mode)) {
      this.fullSyncs++
      this.fullBytesSent += r.bytesSent
      this.fullPauseMs += r.pauseMs
      this.fullPrecopiedPages += r.precopiedPages ?? 0
      return
    }
    this.vsmrSyncs++
    this.unionPages += r.unionPages
    this.identicalPages += r.identicalPages
    this.divergentPages += r.divergentPages
    this.vsmrBytesSent += r.bytesSent
    this.remusBytes += r.dirtyPages * this.pageSize + r.deviceStateBytes
  }

  samples(): Sample[] {
    const c = (name: string, help: string, value: number): Sample => ({
      name: `plover_replica_${name}`,
      help,
      type: 'counter',
      value,
    })
    return [
      c(
        'vsmr_syncs_total',
        'Incremental (divergent-pages) syncs this replica ran as primary',
        this.vsmrSyncs,
      ),
      c('full_syncs_total', 'Full syncs this replica ran as primary', this.fullSyncs),
      c('union_pages_total', 'Dirty-union pages compared in incremental syncs', this.unionPages),
      c('identical_pages_total', 'Union pages found identical on the backup (not sent)', this.identicalPages),
      c('divergent_pages_total', 'Pages sent in incremental syncs', this.divergentPages),
      c('vsmr_bytes_sent_total', 'Sync-link bytes sent in incremental syncs', this.vsmrBytesSent),
      c('remus_equivalent_bytes_total', 'Bytes Remus would have sent for the same syncs', this.remusBytes),
      c('full_sync_bytes_sent_total', 'Sync-link bytes sent in full syncs', this.fullBytesSent),
      c(
        'full_sync_precopied_pages_total',
        'Pages pre-copied while the primary ran, before full syncs',
        this.fullPrecopiedPages,
      ),
      c('sync_pause_ms_total', 'Primary VM pause time summed over syncs (ms)', this.pauseMs),
      c('full_sync_pause_ms_total', 'Primary VM pause time summed over full syncs (ms)', this.fullPauseMs),
      {
        name: 'plover_replica_sync_pause_max_ms',
        help: 'Longest primary pause (ms)',
        type: 'gauge',
        value: this.maxPauseMs,
      },
      c('sync_failures_total', 'Syncs that failed on the primary side', this.failures),
    ]
  }
}
