// A planned switchover: the primary hands leadership of the log to its synced backup before it
// stops (maintenance, a rolling upgrade), so the backup's VM becomes primary at once instead of
// after an election timeout.
//
// WHY only to a backup whose sync protects the outputs: that backup's VM is trusted (a correct
// execution of the log), so its PrimacyGate promotes it; any other target would refuse and hand
// leadership back, or leave the cluster without a primary. Held outputs of the old primary are
// dropped when it is demoted (their sync never committed, so no client saw them acknowledged);
// clients retry on the new primary, as after a failover.
import type { Replica } from '@plover/consensus'
import type { VmReplica } from '../protocol/vm-replica.js'

export type HandoverReplica = Pick<Replica, 'role' | 'leader' | 'term' | 'transferLeadership' | 'on' | 'off'>

export interface HandoverOptions {
  readonly replica: HandoverReplica
  readonly vm: Pick<VmReplica, 'role' | 'guard'>
  /** The replica id of the backup attached to this primary (SyncLinks names it). */
  readonly backupId: number | undefined
  /** Give up after this long (default 3000 ms): the caller then stops anyway, a plain failover. */
  readonly timeoutMs?: number
}

export type HandoverResult =
  | { readonly handedTo: number; readonly term: number }
  | { readonly skipped: string }

/** Resolves once `backupId` leads (or with why it was not tried or did not happen); never rejects. */
export async function handOverPrimacy(o: HandoverOptions): Promise<HandoverResult> {
  const { replica, vm, backupId } = o
  if (replica.role !== 'leader') return { skipped: 'not the leader' }
  if (vm.role !== 'primary') return { skipped: 'this VM is not primary' }
  if (backupId === undefined) return { skipped: 'no backup attached' }
  if (!vm.guard.isProtected)
    return { skipped: `backup ${backupId} has not protected the outputs (not synced)` }
  const timeoutMs = o.timeoutMs ?? 3000
  return new Promise<HandoverResult>((resolve) => {
    const done = (r: HandoverResult) => {
      clearTimeout(timer)
      replica.off('leader', onLeader)
      resolve(r)
    }
    const onLeader = (leader: number, term: number) => {
      if (leader === backupId) done({ handedTo: backupId, term })
    }
    const timer = setTimeout(
      () => done({ skipped: `backup ${backupId} did not take over within ${timeoutMs} ms` }),
      timeoutMs,
    )
    replica.on('leader', onLeader)
    try {
      replica.transferLeadership(backupId)
    } catch (err) {
      done({ skipped: `transfer refused: ${(err as Error).message}` })
    }
  })
}
