// The QEMU redis-guest rows of the comparison. They need a replicated pair of QEMU guests —
// @plover/qemu's QemuVm on both sides, client frames through VmReplica, redis-benchmark over a
// tap — which is being written in parallel. Until it exists the rows say so instead of showing
// numbers. (The monitor's own verdicts on a real QEMU redis guest are tested in
// packages/idle-monitor/test/qemu-guest.test.ts.)
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { notMeasured, type Row } from './summarize.js'

const HANDOFF = fileURLToPath(new URL('../../../packages/qemu/HANDOFF.md', import.meta.url))

export async function qemuRows(): Promise<Row[]> {
  const note = existsSync(HANDOFF)
    ? 'not measured yet: needs a replicated QEMU pair (QemuVm both sides, frames via VmReplica); none ready'
    : 'not measured yet: @plover/qemu has no bootable redis guest (no packages/qemu/HANDOFF.md)'
  return ['idle', 'fixed-25ms', 'fixed-100ms'].map((p) => notMeasured('QEMU redis', p, note))
}
