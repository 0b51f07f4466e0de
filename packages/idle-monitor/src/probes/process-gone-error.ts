/**
 * The observed process has exited (or was never there). Probes never throw this from
 * `sample()`: they return `{ state: 'gone', error }` so that a sampling timer cannot die with an
 * unhandled exception when the VM crashes. The monitor turns it into its `gone` event.
 */
export class ProcessGoneError extends Error {
  override readonly name = 'ProcessGoneError'
  constructor(
    readonly pid: number,
    readonly detail: string,
  ) {
    super(`process ${pid} is gone: ${detail}`)
  }
}

/** errno codes that mean "the /proc entry's process no longer exists". */
export function isGoneErrno(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  // ESRCH: reading an fd whose task died; ENOENT: opening /proc/PID/* after the reap.
  return code === 'ESRCH' || code === 'ENOENT'
}
