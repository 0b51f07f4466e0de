// A storage failure is never silent: the WAL turns every failed write/fsync/rename into a
// StorageError and then refuses all further operations (state "failed"), so the replica stops
// instead of acknowledging something that is not on disk.

export type StorageErrorKind =
  /** write/fsync/rename/open failed (ENOSPC, EIO, …); `cause` holds the errno error. */
  | 'io'
  /** Corruption that is not a torn tail (e.g. in the middle of the log): refuse to start. */
  | 'corrupt'
  /** The storage already failed earlier, or was closed. */
  | 'failed'
  | 'closed'

export class StorageError extends Error {
  override readonly name = 'StorageError'
  constructor(
    readonly kind: StorageErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }

  /** errno code of the underlying failure (e.g. 'ENOSPC'), if any. */
  get code(): string | undefined {
    const c = this.cause as { code?: unknown } | undefined
    return typeof c?.code === 'string' ? c.code : undefined
  }
}
