// Compares two device-state streams for "the same VM state". A stream exported, loaded and
// exported again is byte-identical except for the RTC (mc146818rtc): QEMU saves its clock
// registers from host time, so they tick between the two exports. Everything else must match.
// Snapshot images (saveSnapshotState) are compared by the streams inside them: their snapshot
// table carries the save's date and clock, which differ between any two saves.

import { snapshotStream } from './snapshot-image.js'
import { isSnapshotState } from './snapshot-state.js'

const RTC_SECTION = Buffer.from('\x0bmc146818rtc', 'latin1')
// Section header after the name: instance id (4) and version (4); then cmos_data[128] and the
// RTC's time-keeping fields, all host-clock derived.
const RTC_HEADER = RTC_SECTION.byteLength + 8
const RTC_VOLATILE = 128 + 64

export interface StateDifference {
  readonly same: boolean
  /** Offsets that differ outside the RTC, at most 16. */
  readonly offsets: readonly number[]
  readonly lengths: readonly [number, number]
}

export function compareDeviceState(a: Uint8Array, b: Uint8Array): StateDifference {
  const stream = (x: Uint8Array) =>
    isSnapshotState(x) ? snapshotStream(x) : Buffer.from(x.buffer, x.byteOffset, x.byteLength)
  const ba = stream(a)
  const bb = stream(b)
  const lengths: [number, number] = [ba.byteLength, bb.byteLength]
  if (ba.byteLength !== bb.byteLength) return { same: false, offsets: [], lengths }
  const rtcA = ba.indexOf(RTC_SECTION)
  const rtcB = bb.indexOf(RTC_SECTION)
  const offsets: number[] = []
  if (rtcA !== rtcB) offsets.push(Math.min(rtcA, rtcB))
  const lo = rtcA < 0 ? -1 : rtcA + RTC_HEADER
  const hi = rtcA < 0 ? -1 : lo + RTC_VOLATILE
  for (let i = 0; i < ba.byteLength && offsets.length < 16; i++) {
    if (ba[i] !== bb[i] && (i < lo || i >= hi)) offsets.push(i)
  }
  return { same: offsets.length === 0, offsets, lengths }
}

export function sameDeviceState(a: Uint8Array, b: Uint8Array): boolean {
  return compareDeviceState(a, b).same
}
