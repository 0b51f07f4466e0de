// /proc/PID/pagemap decoding (Documentation/admin-guide/mm/pagemap.rst): one little-endian u64 per
// virtual page. Bit 55 is soft-dirty: set when the page was written since the last
// `echo 4 > /proc/PID/clear_refs`. On kernels without CONFIG_MEM_SOFT_DIRTY it is always 0.

export const PAGEMAP_ENTRY_BYTES = 8

export interface PagemapEntry {
  readonly present: boolean
  readonly swapped: boolean
  /** File page or shared anonymous page. */
  readonly fileOrShared: boolean
  readonly exclusive: boolean
  readonly softDirty: boolean
  /** Page frame number; 0 unless the reader has CAP_SYS_ADMIN. */
  readonly pfn: bigint
}

// Flags live in the high 32-bit half: bit 55 = bit 23 of it, 56 = 24, 61 = 29, 62 = 30, 63 = 31.
const SOFT_DIRTY = 1 << 23
const EXCLUSIVE = 1 << 24
const FILE_OR_SHARED = 1 << 29
const SWAPPED = 1 << 30
const PRESENT = 2 ** 31

export function decodePagemapEntry(buf: Uint8Array, index: number): PagemapEntry {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const at = index * PAGEMAP_ENTRY_BYTES
  const raw = view.getBigUint64(at, true)
  const high = view.getUint32(at + 4, true)
  return {
    present: (high & PRESENT) !== 0,
    swapped: (high & SWAPPED) !== 0,
    fileOrShared: (high & FILE_OR_SHARED) !== 0,
    exclusive: (high & EXCLUSIVE) !== 0,
    softDirty: (high & SOFT_DIRTY) !== 0,
    pfn: raw & ((1n << 55n) - 1n),
  }
}

/**
 * Appends `firstPage + i` to `out` for every entry i of `buf` with the soft-dirty bit, returning the
 * new count. Reads only the high half of each entry: this runs over every page of guest RAM.
 */
export function collectSoftDirty(
  buf: Uint8Array,
  entries: number,
  firstPage: number,
  out: Uint32Array,
  count: number,
): number {
  if (buf.byteLength < entries * PAGEMAP_ENTRY_BYTES) throw new RangeError('pagemap buffer too short')
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  let n = count
  for (let i = 0; i < entries; i++) {
    if ((view.getUint32(i * PAGEMAP_ENTRY_BYTES + 4, true) & SOFT_DIRTY) !== 0) out[n++] = firstPage + i
  }
  return n
}

/** Number of entries with the soft-dirty bit. */
export function countSoftDirty(buf: Uint8Array, entries: number): number {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  let n = 0
  for (let i = 0; i < entries; i++) {
    if ((view.getUint32(i * PAGEMAP_ENTRY_BYTES + 4, true) & SOFT_DIRTY) !== 0) n++
  }
  return n
}

/** Number of entries whose page is present in RAM. */
export function countPresent(buf: Uint8Array, entries: number): number {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  let n = 0
  for (let i = 0; i < entries; i++) {
    if ((view.getUint32(i * PAGEMAP_ENTRY_BYTES + 4, true) & PRESENT) !== 0) n++
  }
  return n
}
