// An operator's membership change — remove a dead replica, add a replacement as a learner, or
// add a member with the role its address book gives it — checked and proposed on the leader.
//
// WHY in the SDK: every runtime needs this step after a failover (docs/operations.md), and each
// example had its own copy of the checks. A replacement VM replica joins as a learner (it cannot
// campaign while its VM is untrusted); LearnerPromotion makes it a voter after its full sync.
import type { Replica } from '@plover/consensus'
import { CONSENSUS_WITNESS_ROLE } from './backup-progress.js'
import { CONSENSUS_ADD_MEMBER, CONSENSUS_LEARNER_ROLE } from './learner-promotion.js'
import { CONSENSUS_VOTER_ROLE } from './primacy-gate.js'

// Type-only import of consensus: ConfChangeType.RemoveMember, checked by
// test/runtime/membership-request.test.ts.
export const CONSENSUS_REMOVE_MEMBER = 1

export type MembershipRequest =
  | { readonly op: 'remove'; readonly id: number }
  /** `learner`: joins without a vote (a VM replica that still needs its full sync). */
  | { readonly op: 'add'; readonly id: number; readonly learner: boolean }

/** The request is malformed (the caller's mistake: HTTP 400). */
export class MembershipRequestError extends Error {
  override readonly name = 'MembershipRequestError'
}

/** The change was refused by the cluster (not the leader, unknown peer, change pending: HTTP 409). */
export class MembershipChangeRefused extends Error {
  override readonly name = 'MembershipChangeRefused'
}

const SHAPE = 'give exactly one of {"add": id}, {"add": id, "role": "learner"} or {"remove": id}'

/** Parses `{"remove": id}` | `{"add": id}` | `{"add": id, "role": "learner"}` (JSON already decoded). */
export function parseMembershipRequest(body: unknown): MembershipRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new MembershipRequestError(`the body must be a JSON object: ${SHAPE}`)
  const b = body as Record<string, unknown>
  for (const k of Object.keys(b))
    if (k !== 'add' && k !== 'remove' && k !== 'role')
      throw new MembershipRequestError(`unknown field "${k}": ${SHAPE}`)
  if ((b.add === undefined) === (b.remove === undefined)) throw new MembershipRequestError(SHAPE)
  const id = b.add ?? b.remove
  if (!Number.isInteger(id) || (id as number) < 1)
    throw new MembershipRequestError(`the replica id must be a positive integer, got ${JSON.stringify(id)}`)
  if (b.remove !== undefined) {
    if (b.role !== undefined) throw new MembershipRequestError('"role" goes only with "add"')
    return { op: 'remove', id: id as number }
  }
  if (b.role !== undefined && b.role !== 'learner')
    throw new MembershipRequestError(`"role" may only be "learner", got ${JSON.stringify(b.role)}`)
  return { op: 'add', id: id as number, learner: b.role === 'learner' }
}

export type MembershipReplica = Pick<Replica, 'role' | 'leader' | 'proposeConfChange'>

/**
 * Proposes `req` on `replica` (it must lead) and resolves with the change's log index once it is
 * committed. `roleOf(id)` is the address book: an added member must be in it, and a member added
 * without "learner" gets the role listed there (a witness stays a witness).
 */
export async function proposeMembership(
  replica: MembershipReplica,
  req: MembershipRequest,
  roleOf: (id: number) => 'voter' | 'witness' | undefined,
): Promise<number> {
  if (replica.role !== 'leader')
    throw new MembershipChangeRefused(`not the leader (leader is ${replica.leader || 'unknown'})`)
  if (req.op === 'remove')
    return replica.proposeConfChange({
      type: CONSENSUS_REMOVE_MEMBER,
      id: req.id,
      role: CONSENSUS_VOTER_ROLE,
    })
  const listed = roleOf(req.id)
  if (listed === undefined)
    throw new MembershipChangeRefused(`unknown peer ${req.id}: not in this replica's address book`)
  const role = req.learner
    ? CONSENSUS_LEARNER_ROLE
    : listed === 'witness'
      ? CONSENSUS_WITNESS_ROLE
      : CONSENSUS_VOTER_ROLE
  return replica.proposeConfChange({ type: CONSENSUS_ADD_MEMBER, id: req.id, role })
}
