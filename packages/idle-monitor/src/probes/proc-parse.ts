// Pure parsers for the /proc files the probes read. Kept apart from I/O so they are unit-tested
// on fixed strings (including a comm with spaces and parentheses).

export interface ProcStat {
  /** R, S, D, Z (zombie), X (dead), T, t, I, … */
  readonly state: string
  readonly utimeTicks: number
  readonly stimeTicks: number
  readonly numThreads: number
  /** Start time after boot, in clock ticks: with the pid, identifies the process across pid reuse. */
  readonly startTimeTicks: number
  readonly comm: string
}

/** Parses /proc/PID/stat or /proc/PID/task/TID/stat (proc(5)). */
export function parseProcStat(text: string): ProcStat {
  // comm is in parentheses and may itself contain ') ' — split at the LAST ')'.
  const open = text.indexOf('(')
  const close = text.lastIndexOf(')')
  if (open < 0 || close < open) throw new Error(`malformed /proc stat line: ${text.slice(0, 80)}`)
  const rest = text.slice(close + 2).split(' ')
  // rest[0] is field 3 (state); field n is rest[n - 3].
  const field = (n: number): number => {
    const v = Number(rest[n - 3])
    if (!Number.isFinite(v)) throw new Error(`malformed /proc stat field ${n}: ${text.slice(0, 80)}`)
    return v
  }
  return {
    state: rest[0],
    utimeTicks: field(14),
    stimeTicks: field(15),
    numThreads: field(20),
    startTimeTicks: field(22),
    comm: text.slice(open + 1, close),
  }
}

export interface Schedstat {
  /** Time spent running on a CPU, ns. */
  readonly runNs: number
  /** Time spent runnable but waiting on a runqueue, ns. */
  readonly waitNs: number
}

/** Parses /proc/PID/task/TID/schedstat: "run_ns wait_ns timeslices". */
export function parseSchedstat(text: string): Schedstat {
  const [run, wait] = text.split(' ')
  const runNs = Number(run)
  const waitNs = Number(wait)
  if (!Number.isFinite(runNs) || !Number.isFinite(waitNs))
    throw new Error(`malformed schedstat: ${text.slice(0, 80)}`)
  return { runNs, waitNs }
}

export interface ProcIo {
  readonly readBytes: number
  readonly writeBytes: number
  readonly syscr: number
  readonly syscw: number
}

/** Parses /proc/PID/io. */
export function parseProcIo(text: string): ProcIo {
  const get = (key: string): number => {
    const at = text.indexOf(`${key}: `)
    if (at < 0) throw new Error(`/proc io lacks ${key}`)
    const end = text.indexOf('\n', at)
    return Number(text.slice(at + key.length + 2, end < 0 ? undefined : end))
  }
  return {
    readBytes: get('read_bytes'),
    writeBytes: get('write_bytes'),
    syscr: get('syscr'),
    syscw: get('syscw'),
  }
}

const SPACE = 0x20
const ZERO = 0x30
const CLOSE_PAREN = 0x29

/** {@link parseSchedstat} on raw bytes, without decoding a string (hot path). */
export function parseSchedstatBytes(buf: Uint8Array, len: number): Schedstat {
  let i = 0
  let runNs = 0
  for (; i < len && buf[i] !== SPACE; i++) runNs = runNs * 10 + (buf[i] - ZERO)
  let waitNs = 0
  for (i++; i < len && buf[i] !== SPACE; i++) waitNs = waitNs * 10 + (buf[i] - ZERO)
  if (i === 0 || i >= len) throw new Error('malformed schedstat')
  return { runNs, waitNs }
}

/** The state letter of a stat line in raw bytes; the caller reads only its first ~64 bytes. */
export function parseStatStateBytes(buf: Uint8Array, len: number): string {
  for (let i = len - 1; i >= 0; i--) if (buf[i] === CLOSE_PAREN) return String.fromCharCode(buf[i + 2])
  throw new Error('malformed stat: no comm')
}

/** Just the state letter of a stat line (cheaper than a full parse, for per-thread reads). */
export function parseStatState(text: string): string {
  return text.charAt(text.lastIndexOf(')') + 2)
}

/** A process whose stat state is Z or X has exited; only its parent's reap is missing. */
export function isDeadState(state: string): boolean {
  return state === 'Z' || state === 'X' || state === 'x'
}
