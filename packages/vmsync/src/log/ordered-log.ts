// What vmsync needs from the consensus log. @plover/consensus's Replica satisfies it through a
// thin adapter (see examples/); tests may use an in-memory log as an extra fast path.
import type { EventEmitter } from 'eventemitter3'

/** Kinds of records vmsync puts in the log; numeric values match @plover/consensus EntryType. */
export enum LogRecordKind {
  Input = 1,
  SyncMarker = 3,
  SyncDone = 4,
  /**
   * The primary lost its backup: its held outputs go out once this commits (the proof that it
   * still leads). Carries nothing the replicas act on; the proposer waits for its commit.
   */
  Unprotect = 5,
}

export interface LogRecord {
  readonly index: number
  readonly kind: LogRecordKind
  readonly data: Uint8Array
}

export interface OrderedLogEvents {
  /** A committed record, delivered in index order exactly once per process lifetime. */
  apply: (record: LogRecord) => void
  /** This replica became (true) or stopped being (false) the leader. */
  leadership: (isLeader: boolean) => void
  /**
   * Records up to `throughIndex` will never be applied here: the log was compacted past them (a
   * snapshot from the leader, or a restart from a compacted log). Ordered with 'apply'.
   */
  gap: (throughIndex: number) => void
}

export interface OrderedLog extends EventEmitter<OrderedLogEvents> {
  /** Resolves with the index once committed; rejects if not leader or leadership is lost. */
  propose(kind: LogRecordKind, data: Uint8Array): Promise<number>
  readonly isLeader: boolean
}
