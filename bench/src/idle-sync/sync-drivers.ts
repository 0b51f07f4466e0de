// What decides when the pair syncs: a fixed interval (Remus: checkpoint every N ms of running)
// or the idle monitor's sync-due events. Both call the same SimPair.sync().
import type { IdleMonitor, SyncReason } from '@plover/idle-monitor'
import type { SimPair, SyncResult } from './sim-pair.js'

export interface SyncDriver {
  start(): void
  /** Stops starting syncs; resolves when a running one has finished. */
  stop(): Promise<void>
  readonly reasons: Partial<Record<SyncReason | 'fixed', number>>
  readonly failures: string[]
}

/** Remus-style: sync `intervalMs` after the previous sync completed (the VM ran that long). */
export function fixedInterval(
  pair: SimPair,
  intervalMs: number,
  onSync: (r: SyncResult) => void,
): SyncDriver {
  let running = false
  let loop: Promise<void> = Promise.resolve()
  const reasons: SyncDriver['reasons'] = {}
  const failures: string[] = []
  return {
    reasons,
    failures,
    start() {
      running = true
      loop = (async () => {
        while (running) {
          await new Promise((r) => setTimeout(r, intervalMs))
          if (!running) break
          try {
            onSync(await pair.sync())
            reasons.fixed = (reasons.fixed ?? 0) + 1
          } catch (err) {
            failures.push((err as Error).message)
          }
        }
      })()
    },
    async stop() {
      running = false
      await loop
    },
  }
}

/** PLOVER-style with our bounds: sync when the idle monitor says so. */
export function idleDriven(pair: SimPair, monitor: IdleMonitor, onSync: (r: SyncResult) => void): SyncDriver {
  let current: Promise<void> = Promise.resolve()
  let syncing = false
  const reasons: SyncDriver['reasons'] = {}
  const failures: string[] = []
  monitor.on('sync-due', (due) => {
    if (syncing) return
    syncing = true
    monitor.syncStarted()
    current = pair
      .sync()
      .then(
        (r) => {
          reasons[due.reason] = (reasons[due.reason] ?? 0) + 1
          onSync(r)
        },
        (err: Error) => {
          failures.push(err.message)
        },
      )
      .finally(() => {
        syncing = false
        monitor.syncCompleted()
      })
  })
  return {
    reasons,
    failures,
    start: () => monitor.start(),
    async stop() {
      monitor.stop()
      await current
    },
  }
}
