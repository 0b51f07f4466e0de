// Typed errors thrown by the core's local API (never by step(): a peer's message can't crash us).
import type { NodeId } from './types.js'

/** propose()/proposeConfChange()/transferLeadership() on a replica that is not the leader. */
export class NotLeaderError extends Error {
  override readonly name = 'NotLeaderError'
  /** Best-known leader (0 = unknown) so a client can redirect. */
  readonly leader: NodeId

  constructor(leader: NodeId) {
    super(leader === 0 ? 'not the leader (leader unknown)' : `not the leader (leader is ${leader})`)
    this.leader = leader
  }
}

/** The leader refuses the proposal right now (transfer in progress, membership change pending…). */
export class ProposalDroppedError extends Error {
  override readonly name = 'ProposalDroppedError'
}

/** The local API was called with arguments that can never succeed. */
export class InvalidRequestError extends Error {
  override readonly name = 'InvalidRequestError'
}

/**
 * A peer's message would violate a Raft invariant (e.g. overwrite a committed entry). step()
 * drops such a message and counts it (RaftCore.status().violations) instead of throwing.
 */
export class ProtocolViolationError extends Error {
  override readonly name = 'ProtocolViolationError'
}
