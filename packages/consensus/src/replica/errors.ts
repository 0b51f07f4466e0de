import type { NodeId } from '../core/types.js'

export { NotLeaderError } from '../core/errors.js'

/**
 * This replica stopped being leader before the proposal at `index` was known to commit. The
 * entry MAY still commit under the next leader (it may already be on a quorum): treat the
 * outcome as unknown and retry idempotently. If the entry is known to have been overwritten
 * (`overwritten: true`), it definitely did not commit.
 */
export class LeadershipLostError extends Error {
  override readonly name = 'LeadershipLostError'
  constructor(
    readonly index: number,
    readonly term: number,
    readonly leader: NodeId,
    readonly overwritten: boolean,
  ) {
    super(
      overwritten
        ? `entry ${index} of term ${term} was overwritten by another leader`
        : `lost leadership before entry ${index} of term ${term} committed (outcome unknown)`,
    )
  }
}

/** The replica was closed (or stopped after a storage failure) with the proposal pending. */
export class ReplicaStoppedError extends Error {
  override readonly name = 'ReplicaStoppedError'
}
