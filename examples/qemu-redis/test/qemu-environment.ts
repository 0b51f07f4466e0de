// The gate of every test here that needs root, QEMU, redis-tools and the guest image: the same
// contract as @plover/qemu's requireQemu (not imported: its testing helpers live behind a subpath).
import type { Test } from 'tap'
import { unavailableReason } from '../src/demo/environment.js'

/** True when the test can run; otherwise skips it, or FAILS it under PLOVER_REQUIRE_QEMU=1 (CI). */
export function qemuEnvironment(t: Test): boolean {
  const missing = unavailableReason({ needImage: true })
  if (!missing) return true
  if (process.env.PLOVER_REQUIRE_QEMU === '1') t.fail(`PLOVER_REQUIRE_QEMU=1 but ${missing}`)
  else t.plan(0, `skipped: ${missing}`)
  return false
}
