import { readFileSync } from 'node:fs'
import { parseSchedstat } from './proc-parse.js'

let cached: boolean | undefined

/**
 * Whether this kernel exposes per-thread runtimes in /proc/PID/task/TID/schedstat. Without
 * CONFIG_SCHED_INFO the file is absent or prints zeros; our own main thread has surely run, so a
 * zero runtime means "not available".
 */
export function schedstatAvailable(): boolean {
  if (cached !== undefined) return cached
  try {
    cached = parseSchedstat(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'latin1')).runNs > 0
  } catch {
    cached = false
  }
  return cached
}
