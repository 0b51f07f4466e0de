// Typed errors of device-state transfer. Each says which side failed and QEMU's reason, and
// whether the source VM is still resumable with `cont` (it is, unless QEMU itself is gone).

export type MigrationSide = 'source' | 'destination' | 'relay'

export class MigrationFailedError extends Error {
  override readonly name = 'MigrationFailedError'
  constructor(
    readonly side: MigrationSide,
    /** QEMU's `error-desc`, a QMP error, or a socket error. */
    readonly reason: string,
    /** Last `query-migrate` status seen on that side. */
    readonly status: string | undefined,
  ) {
    super(`migration failed on the ${side}${status ? ` (status ${status})` : ''}: ${reason}`)
  }
}

export class MigrationTimeoutError extends Error {
  override readonly name = 'MigrationTimeoutError'
  constructor(
    readonly side: MigrationSide,
    readonly timeoutMs: number,
    readonly status: string | undefined,
  ) {
    super(`migration on the ${side} did not finish within ${timeoutMs} ms (status ${status ?? 'unknown'})`)
  }
}

/** Any failure of a transfer step as a MigrationFailedError of `side` (typed errors pass through). */
export function asMigrationError(err: unknown, side: MigrationSide): Error {
  if (err instanceof MigrationFailedError || err instanceof MigrationTimeoutError) return err
  return new MigrationFailedError(side, err instanceof Error ? err.message : String(err), undefined)
}
