// Compares two device-state streams for "the same VM state". A stream exported, loaded and
// exported again is byte-identical except for two kinds of QEMU bookkeeping, which are skipped:
//   - the RTC (mc146818rtc): QEMU saves its clock registers from host time, so they tick between
//     the two exports;
//   - with x-ignore-shared, the RAM section's header carries each RAM block's current mapping
//     address (mr->addr). A booted primary's virtio-net option ROM keeps the BAR address SeaBIOS
//     once mapped it at (0xfeb80000) although the guest has since disabled the ROM BAR, while a
//     fresh standby never mapped it (0). It is where QEMU maps the block, not guest state; the
//     block names and sizes beside it still count.
// Everything else must match. Snapshot images (saveSnapshotState) are compared by the streams
// inside them: their snapshot table carries the save's date and clock, which differ between any
// two saves.

import { snapshotStream } from './snapshot-image.js'
import { isSnapshotState } from './snapshot-state.js'

const RTC_SECTION = Buffer.from('\x0bmc146818rtc', 'latin1')
// Section header after the name: instance id (4) and version (4); then cmos_data[128] and the
// RTC's time-keeping fields, all host-clock derived.
const RTC_HEADER = RTC_SECTION.byteLength + 8
const RTC_VOLATILE = 128 + 64
const RAM_SECTION = Buffer.from('\x03ram', 'latin1')
const IGNORE_SHARED = Buffer.from('x-ignore-shared', 'latin1')
/** RAM_SAVE_FLAG_MEM_SIZE: the low bits of the section's first u64 are flags. */
const RAM_FLAGS_MASK = 0xfffn

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
  const skipped: Array<readonly [number, number]> = []
  if (rtcA >= 0) skipped.push([rtcA + RTC_HEADER, rtcA + RTC_HEADER + RTC_VOLATILE])
  // Only where both streams put the same address fields (the same block list).
  const addrsA = ramBlockAddrRanges(ba)
  const addrsB = ramBlockAddrRanges(bb)
  if (addrsA.length === addrsB.length && addrsA.every(([lo], i) => addrsB[i][0] === lo))
    skipped.push(...addrsA)
  const inSkipped = (i: number) => skipped.some(([lo, hi]) => i >= lo && i < hi)
  for (let i = 0; i < ba.byteLength && offsets.length < 16; i++) {
    if (ba[i] !== bb[i] && !inSkipped(i)) offsets.push(i)
  }
  return { same: offsets.length === 0, offsets, lengths }
}

/**
 * Offsets [from, to) of each RAM block's mapping address in an x-ignore-shared stream's RAM
 * section header: `u64 total | flags`, then per block `u8 len, idstr, u64 used_length, u64 addr`
 * until the lengths add up to the total. Empty when the stream has no such header or it does not
 * parse (then every byte is compared).
 */
export function ramBlockAddrRanges(stream: Buffer): Array<readonly [number, number]> {
  if (stream.indexOf(IGNORE_SHARED) < 0) return []
  const at = stream.indexOf(RAM_SECTION)
  if (at < 0) return []
  let pos = at + RAM_SECTION.byteLength + 8 // instance id, version
  if (pos + 8 > stream.byteLength) return []
  const total = stream.readBigUInt64BE(pos) & ~RAM_FLAGS_MASK
  pos += 8
  const ranges: Array<readonly [number, number]> = []
  let sum = 0n
  while (sum < total) {
    if (pos >= stream.byteLength) return []
    pos += 1 + stream[pos]
    if (pos + 16 > stream.byteLength) return []
    sum += stream.readBigUInt64BE(pos)
    ranges.push([pos + 8, pos + 16])
    pos += 16
  }
  return sum === total ? ranges : []
}

export function sameDeviceState(a: Uint8Array, b: Uint8Array): boolean {
  return compareDeviceState(a, b).same
}
