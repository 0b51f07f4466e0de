import { execFileSync } from 'node:child_process'
import type { GuestImage } from '../guest/guest-image.js'
import { findGuestImage } from '../guest/guest-image.js'

/** Set to `1` (CI does) to turn "QEMU or guest missing" from a skip into a failure. */
export const REQUIRE_QEMU_ENV = 'PLOVER_REQUIRE_QEMU'

/** What a QEMU test needs. */
export interface QemuTestEnv {
  readonly qemuBinary: string
  readonly image: GuestImage
}

/** The subset of a tap Test that requireQemu uses (keeps tap out of the runtime dependencies). */
export interface TestLike {
  plan(n: number, comment?: string): void
  fail(message: string): unknown
}

let cached: { env?: QemuTestEnv; missing?: string } | undefined

/** Why QEMU tests cannot run here, or undefined when they can. */
export function qemuUnavailableReason(): string | undefined {
  return probe().missing
}

function probe(): { env?: QemuTestEnv; missing?: string } {
  if (cached) return cached
  const qemuBinary = 'qemu-system-x86_64'
  try {
    execFileSync(qemuBinary, ['--version'], { stdio: 'ignore' })
  } catch {
    cached = { missing: `${qemuBinary} not found (apt-get install qemu-system-x86)` }
    return cached
  }
  const image = findGuestImage()
  if (!image) {
    cached = { missing: 'guest image not built (node packages/qemu/dist/guest/cli.js build)' }
    return cached
  }
  cached = { env: { qemuBinary, image } }
  return cached
}

/**
 * Gate for every test that boots QEMU. Returns the environment, or undefined after marking the
 * test skipped (`t.plan(0, reason)`) — or FAILED when `PLOVER_REQUIRE_QEMU=1`, so CI cannot pass
 * by skipping. Call it first in the test:
 *
 *   const env = requireQemu(t); if (!env) return
 */
export function requireQemu(t: TestLike): QemuTestEnv | undefined {
  const { env, missing } = probe()
  if (env) return env
  if (process.env[REQUIRE_QEMU_ENV] === '1') {
    t.fail(`${REQUIRE_QEMU_ENV}=1 but ${missing}`)
    return undefined
  }
  t.plan(0, `skipped: ${missing}`)
  return undefined
}
