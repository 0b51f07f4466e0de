// What the example needs from the host, checked up front (one clear line instead of a failure
// half-way). The guest image may be missing: the example builds it (the test does not).
import { execFileSync } from 'node:child_process'
import { findGuestImage } from '@plover/qemu'

function has(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Why the example cannot run here, or undefined. */
export function unavailableReason(opts: { needImage?: boolean } = {}): string | undefined {
  if (process.getuid?.() !== 0) return 'root required (bridge, taps, network namespace)'
  if (!has('qemu-system-x86_64', ['--version']))
    return 'qemu-system-x86_64 not found (apt-get install qemu-system-x86)'
  if (!has('redis-benchmark', ['--version'])) return 'redis-benchmark not found (apt-get install redis-tools)'
  if (!has('ip', ['-V'])) return 'ip not found (apt-get install iproute2)'
  if (opts.needImage && !findGuestImage())
    return 'guest image not built (node packages/qemu/dist/guest/cli.js build)'
  return undefined
}
