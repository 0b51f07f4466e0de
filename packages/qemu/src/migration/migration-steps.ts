// The QMP steps shared by every form of device-state transfer (DESIGN §2): x-ignore-shared on both
// sides so the shared RAM file is not sent, then poll `query-migrate` until a final state.
import { setTimeout as sleep } from 'node:timers/promises'
import type { QmpClient } from '../qmp/client.js'
import type { MigrationInfo } from '../qmp/types.js'
import { MigrationFailedError, type MigrationSide, MigrationTimeoutError } from './errors.js'

export type MigrationQmp = Pick<
  QmpClient,
  | 'stop'
  | 'cont'
  | 'queryStatus'
  | 'migrateSetCapabilities'
  | 'migrate'
  | 'migrateIncoming'
  | 'queryMigrate'
  | 'execute'
>

/** Budget of one device-state transfer unless the caller gives one. */
export const DEFAULT_TRANSFER_TIMEOUT_MS = 30_000

/** RAM blocks of shared memory backends are left out of the stream: both sides map their own file. */
export async function enableIgnoreShared(qmp: MigrationQmp): Promise<void> {
  await qmp.migrateSetCapabilities([{ capability: 'x-ignore-shared', state: true }])
}

export interface PollOptions {
  readonly timeoutMs: number
  /** Polling period; query-migrate costs ~1 ms, transfers here last tens of ms. */
  readonly intervalMs?: number
  readonly signal?: AbortSignal
}

/** Polls `query-migrate` until completed (resolves with the final info) or failed/cancelled (throws). */
export async function waitForMigration(
  qmp: MigrationQmp,
  side: MigrationSide,
  options: PollOptions,
): Promise<MigrationInfo> {
  const deadline = performance.now() + options.timeoutMs
  let last: MigrationInfo | undefined
  for (;;) {
    if (options.signal?.aborted) {
      throw new MigrationFailedError(side, String(options.signal.reason ?? 'aborted'), last?.status)
    }
    try {
      last = await qmp.queryMigrate()
    } catch (err) {
      // A destination whose load fails exits: its QMP connection drops mid-poll.
      throw new MigrationFailedError(side, `query-migrate failed: ${(err as Error).message}`, last?.status)
    }
    if (last.status === 'completed') return last
    if (last.status === 'failed' || last.status === 'cancelled') {
      throw new MigrationFailedError(side, last['error-desc'] ?? `migration ${last.status}`, last.status)
    }
    if (performance.now() > deadline) throw new MigrationTimeoutError(side, options.timeoutMs, last.status)
    await sleep(options.intervalMs ?? 2)
  }
}

/** Best effort: stops an unfinished outgoing migration so the source can `cont`. */
export async function cancelMigration(qmp: MigrationQmp): Promise<void> {
  try {
    await qmp.execute('migrate_cancel')
    const deadline = performance.now() + 5000
    while (performance.now() < deadline) {
      const info = await qmp.queryMigrate()
      if (info.status !== 'active' && info.status !== 'setup' && info.status !== 'cancelling') return
      await sleep(5)
    }
  } catch {
    // QEMU gone or no migration: nothing left to cancel.
  }
}

/** Stops the VM unless it already is (stopped, postmigrate, …). */
export async function ensureStopped(qmp: MigrationQmp): Promise<void> {
  const status = await qmp.queryStatus()
  if (status.running) await qmp.stop()
}

/**
 * A destination reports `completed` a moment before it leaves the `inmigrate` run state (QEMU
 * sets the final state from a bottom half): wait for that, so callers see `paused`.
 */
export async function waitForIncomingSettled(qmp: MigrationQmp, options: PollOptions): Promise<string> {
  const deadline = performance.now() + options.timeoutMs
  for (;;) {
    const { status } = await qmp.queryStatus()
    if (status !== 'inmigrate') return status
    if (performance.now() > deadline)
      throw new MigrationTimeoutError('destination', options.timeoutMs, status)
    await sleep(options.intervalMs ?? 2)
  }
}
