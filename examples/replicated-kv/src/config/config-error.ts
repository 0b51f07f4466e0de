// A configuration problem the operator must fix. The replica's entry point prints its message
// (one line, no stack trace) and exits with CONFIG_EXIT_CODE.
export class ConfigError extends Error {
  override name = 'ConfigError'
}

/** Exit code for bad configuration (EX_CONFIG from sysexits.h). */
export const CONFIG_EXIT_CODE = 78

/**
 * Exit code for a damaged log in the data directory (EX_DATAERR): corruption that is not a torn
 * tail. The replica refuses to start (nothing is truncated); the operator replaces the member.
 */
export const DATA_EXIT_CODE = 65
