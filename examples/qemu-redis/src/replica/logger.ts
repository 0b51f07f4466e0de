// Copied from examples/replicated-kv/src/runtime/logger.ts.
// Structured logs: one JSON object per line on stdout, so that an operator can grep and a
// collector can parse them without a format of our own.
export type Level = 'debug' | 'info' | 'warn' | 'error'

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
  error(msg: string, fields?: Record<string, unknown>): void
}

const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 }

export function jsonLogger(
  base: Record<string, unknown>,
  opts: { level?: Level; write?: (line: string) => void } = {},
): Logger {
  const min = ORDER[opts.level ?? 'info']
  const write = opts.write ?? ((line: string) => process.stdout.write(line))
  const emit = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < min) return
    const rec: Record<string, unknown> = { t: new Date().toISOString(), level, ...base, msg }
    if (fields) {
      for (const [k, v] of Object.entries(fields)) rec[k] = v instanceof Error ? v.message : v
    }
    write(`${JSON.stringify(rec)}\n`)
  }
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  }
}
