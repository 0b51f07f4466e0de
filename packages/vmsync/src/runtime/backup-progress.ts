// Whether the leader's log has (almost) reached some other VM replica, i.e. whether a sync now
// is worth starting.
//
// WHY: a sync marker makes the primary's input delivery wait for the backup's Dirty message, and
// a backup that is still replaying the log (a spare that just joined, a replica restarted on an
// old data directory) would stall the primary for the whole replay. Voters and learners run VMs
// (a joining backup is a learner until its full sync); a witness does not.
import type { Replica } from '@plover/consensus'

/** Entries a backup may still lack for a sync to start (a few batches of input). */
export const DEFAULT_CAUGHT_UP_SLACK = 1024

// Type-only import of consensus: MemberRole.Witness, checked by test/runtime/backup-progress.test.ts.
export const CONSENSUS_WITNESS_ROLE = 1

/** True on a leader when another VM member's log is within `slack` entries of the leader's. */
export function vmBackupCaughtUp(
  replica: Pick<Replica, 'id' | 'status'>,
  slack: number = DEFAULT_CAUGHT_UP_SLACK,
): boolean {
  const st = replica.status()
  if (st.role !== 'leader') return false
  const vmMembers = new Set(
    st.membership.members.filter((m) => (m.role as number) !== CONSENSUS_WITNESS_ROLE).map((m) => m.id),
  )
  return st.progress.some(
    (p) =>
      p.id !== replica.id &&
      vmMembers.has(p.id) &&
      p.state === 'replicate' &&
      p.match >= st.lastIndex - slack,
  )
}
