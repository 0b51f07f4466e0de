// A configuration problem the operator must fix. The replica's entry point prints its message
// (one line, no stack trace) and exits with CONFIG_EXIT_CODE.
export class ConfigError extends Error {
  override name = 'ConfigError'
}

/** Exit code for bad configuration (EX_CONFIG from sysexits.h). */
export const CONFIG_EXIT_CODE = 78
