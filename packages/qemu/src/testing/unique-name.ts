/**
 * A name unique to this process and call, for VM names, run dirs and RAM files in tests that may
 * run in parallel with other test files (tap runs files in separate processes).
 */
let counter = 0
export function uniqueVmName(prefix = 'vm'): string {
  counter += 1
  return `${prefix}-${process.pid.toString(36)}-${counter}`
}
