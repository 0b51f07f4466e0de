// Typed sync-protocol failures. Callers (runtime, tests) branch on the class, never on text.

export class SyncProtocolError extends Error {
  override name = 'SyncProtocolError'
}

/** A link payload that is not a valid sync message (bad magic/version/type, truncated, unsorted). */
export class MalformedMessageError extends SyncProtocolError {
  override name = 'MalformedMessageError'
  constructor(
    message: string,
    /** Byte offset where decoding failed. */
    readonly offset: number,
  ) {
    super(`malformed sync message: ${message} (at byte ${offset})`)
  }
}

/** A message for an epoch that is already finished (or was never started). Dropped. */
export class StaleEpochError extends SyncProtocolError {
  override name = 'StaleEpochError'
  constructor(
    readonly messageType: string,
    readonly epoch: number,
    readonly currentEpoch: number,
  ) {
    super(`stale ${messageType} for epoch ${epoch} (current epoch ${currentEpoch})`)
  }
}

/** A second copy of a message this epoch already received. Dropped. */
export class DuplicateMessageError extends SyncProtocolError {
  override name = 'DuplicateMessageError'
  constructor(
    readonly messageType: string,
    readonly epoch: number,
  ) {
    super(`duplicate ${messageType} for epoch ${epoch}`)
  }
}

/** A well-formed message that breaks the protocol (wrong sizes, wrong direction, bad checksum). */
export class ProtocolViolationError extends SyncProtocolError {
  override name = 'ProtocolViolationError'
}

/** The sync of `epoch` did not complete; the backup kept its pre-sync state. */
export class SyncAbortedError extends SyncProtocolError {
  override name = 'SyncAbortedError'
  constructor(
    readonly epoch: number,
    readonly reason: string,
    override readonly cause?: Error,
  ) {
    super(`sync ${epoch} aborted: ${reason}`)
  }
}

/** A bounded wait (peer message, VM quiet) ran out. */
export class SyncTimeoutError extends SyncProtocolError {
  override name = 'SyncTimeoutError'
}
