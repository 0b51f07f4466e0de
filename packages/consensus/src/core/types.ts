// Shared vocabulary of the consensus core. The core (core/raft.ts) is pure: it consumes
// messages and ticks and produces a Ready; storage (wal/) and transport (transport/) are
// edges that only ever see these types.

/** Replica identifier: a small positive integer, stable for the life of the cluster. */
export type NodeId = number

export enum EntryType {
  /** No-op appended by a new leader to commit entries of earlier terms. */
  Empty = 0,
  /** Application data (for Plover: a batch of inbound frames). */
  Normal = 1,
  /** Membership change: data is an encoded ConfChange. */
  ConfChange = 2,
  /** Plover sync marker: cuts the input stream for a VM sync. Opaque to the core. */
  SyncMarker = 3,
  /** Plover sync completion: the backup acknowledged sync k. Opaque to the core. */
  SyncDone = 4,
  /** Plover: the primary lost its backup; its held outputs go out once this commits. Opaque to the core. */
  Unprotect = 5,
}

export interface Entry {
  readonly term: number
  readonly index: number
  readonly type: EntryType
  readonly data: Uint8Array
}

/** What must be on disk before any message that depends on it leaves the replica. */
export interface HardState {
  readonly term: number
  /** 0 = no vote this term. */
  readonly vote: NodeId
  readonly commit: number
}

export enum MemberRole {
  /** Runs a VM; may lead. */
  Voter = 0,
  /** Votes and persists the log; runs no VM; never leads (PLOVER's witness). */
  Witness = 1,
  /** Receives the log but does not vote yet (catching up before promotion). */
  Learner = 2,
}

export interface Member {
  readonly id: NodeId
  readonly role: MemberRole
}

/** Cluster membership. One-server-at-a-time changes (see docs). */
export interface Membership {
  readonly members: readonly Member[]
}

export enum ConfChangeType {
  AddMember = 0,
  RemoveMember = 1,
}

export interface ConfChange {
  readonly type: ConfChangeType
  readonly id: NodeId
  readonly role: MemberRole
}

export interface SnapshotMeta {
  readonly index: number
  readonly term: number
  readonly membership: Membership
}

export interface Snapshot {
  readonly meta: SnapshotMeta
  /** Application state at meta.index (for Plover: the sync epoch it covers, small). */
  readonly data: Uint8Array
}

export enum MessageType {
  PreVote = 0,
  PreVoteResp = 1,
  Vote = 2,
  VoteResp = 3,
  Append = 4,
  AppendResp = 5,
  Heartbeat = 6,
  HeartbeatResp = 7,
  Snapshot = 8,
  TimeoutNow = 9,
  /** Witness hands entries the candidate lacks before voting (see docs/consensus.md). */
  CatchUp = 10,
}

/**
 * One wire message. A flat shape (like raftpb.Message) so that the binary codec is simple and
 * every field has a fixed meaning per type; unused fields are 0 / empty.
 */
export interface Message {
  readonly type: MessageType
  readonly from: NodeId
  readonly to: NodeId
  readonly term: number
  /** Append: index of the entry before `entries`; Vote: candidate's last index. */
  readonly logIndex: number
  /** Append: term of that entry; Vote: candidate's last term. */
  readonly logTerm: number
  readonly commit: number
  readonly entries: readonly Entry[]
  /** Resp: rejected? */
  readonly reject: boolean
  /** AppendResp on reject: follower's hint for where to retry. */
  readonly rejectHint: number
  /** Vote/PreVote: campaign caused by leadership transfer (ignores leases). */
  readonly transfer: boolean
  readonly snapshot?: Snapshot
}
