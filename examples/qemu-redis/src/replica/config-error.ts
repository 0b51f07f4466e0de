// A problem the operator must fix before the replica can start (adapted from
// examples/replicated-kv/src/config/config-error.ts, plus the exit codes of the QEMU replica).
// The entry point prints its message (one line, no stack trace) and exits with its exitCode.

/** Exit codes of the replica process (sysexits.h where one fits). Documented in README.md. */
export const EXIT = {
  /** Clean shutdown (SIGTERM/SIGINT, or the orchestrator's IPC channel closed). */
  ok: 0,
  /** Unexpected startup failure, fatal runtime error (QEMU or the WAL died), or a shutdown > 10 s. */
  failure: 1,
  /**
   * EX_DATAERR: the data directory's log is damaged beyond a torn tail (a bad record in the
   * middle): the replica refuses to start rather than serve from, or vote on, a log with a hole.
   */
  dataError: 65,
  /** EX_UNAVAILABLE: a program the replica runs is missing (qemu-system-x86_64, ip). */
  unavailable: 69,
  /** EX_NOPERM: a voter without root/CAP_NET_ADMIN or /dev/net/tun; a port it may not bind. */
  noPermission: 77,
  /** EX_CONFIG: bad configuration, missing image files, a port already in use. */
  config: 78,
} as const

export class ConfigError extends Error {
  override name = 'ConfigError'
  constructor(
    message: string,
    readonly exitCode: number = EXIT.config,
  ) {
    super(message)
  }
}
