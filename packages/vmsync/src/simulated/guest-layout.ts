// Where the simulated guest keeps its state. Everything the service needs lives in these pages
// (plus the device state), so copying pages + device state from primary to backup is a full sync.
//
//   page 0  superblock: magic, geometry, allocator registers (heap cursor, per-class free lists)
//   page 1  "kernel" page: timer ticks and clock readings (jittery: differs between replicas)
//   page 2  stats page: deterministic op counters + wall-clock busy time (the latter differs)
//   page 3… hash-table buckets (u32 record address per bucket, 0 = empty)
//   rest    heap: slab pages carved into records of one size class each
import { PAGE_SIZE } from '../vm/replicated-vm.js'
import type { GuestMemory } from './guest-memory.js'

export const GUEST_MAGIC = 0x564b4c50 // 'PLKV'
export const GUEST_LAYOUT_VERSION = 1

export const SB = {
  magic: 0,
  version: 4,
  pageCount: 8,
  bucketCount: 12,
  bucketsAddr: 16,
  heapStartPage: 20,
  heapNextPage: 24,
  recordCount: 28,
  /** Per size class: freeHead u32, cursor u32, end u32. */
  classes: 32,
} as const
export const CLASS_STATE_BYTES = 12

export const KERNEL_PAGE = 1
export const KERNEL = {
  ticks: KERNEL_PAGE * PAGE_SIZE,
  lastTickMs: KERNEL_PAGE * PAGE_SIZE + 8,
  lastRequestMs: KERNEL_PAGE * PAGE_SIZE + 16,
  bootMs: KERNEL_PAGE * PAGE_SIZE + 24,
} as const

export const STATS_PAGE = 2
const S = STATS_PAGE * PAGE_SIZE
export const STATS = {
  gets: S,
  sets: S + 4,
  dels: S + 8,
  incrs: S + 12,
  hits: S + 16,
  misses: S + 20,
  errors: S + 24,
  dropped: S + 28,
  busyMs: S + 64,
} as const

export const BUCKETS_PAGE = 3

/** Record header inside the heap. The key follows at +32, the value after the key. */
export const REC = {
  next: 0,
  keyHash: 4,
  valLen: 8,
  version: 12,
  modifiedSec: 16,
  accessSec: 20,
  keyLen: 24,
  sizeClass: 26,
  flags: 27,
  header: 32,
} as const

export const SIZE_CLASSES = [64, 128, 256, 512, 1024, 2048, 4096] as const
export const MAX_RECORD = SIZE_CLASSES[SIZE_CLASSES.length - 1]
/** Smallest guest the layout fits in: 3 fixed pages, 1 bucket page, a few heap pages. */
export const MIN_PAGES = 16

export interface Geometry {
  readonly bucketCount: number
  readonly bucketsAddr: number
  readonly heapStartPage: number
}

export function geometryFor(pageCount: number): Geometry {
  if (pageCount < MIN_PAGES)
    throw new RangeError(`simulated guest needs at least ${MIN_PAGES} pages, got ${pageCount}`)
  // WHY ~1 bucket per page, at most 1/8 of RAM: short chains without starving the heap.
  let bucketCount = 1024
  while (bucketCount * 2 <= pageCount && ((bucketCount * 2 * 4) / PAGE_SIZE) * 8 <= pageCount)
    bucketCount *= 2
  const bucketPages = Math.ceil((bucketCount * 4) / PAGE_SIZE)
  return { bucketCount, bucketsAddr: BUCKETS_PAGE * PAGE_SIZE, heapStartPage: BUCKETS_PAGE + bucketPages }
}

/** "Boots" the guest: writes the superblock of an empty store into zeroed memory. */
export function formatGuest(mem: GuestMemory, bootMs: number): void {
  const g = geometryFor(mem.pageCount)
  mem.setU32(SB.magic, GUEST_MAGIC)
  mem.setU32(SB.version, GUEST_LAYOUT_VERSION)
  mem.setU32(SB.pageCount, mem.pageCount)
  mem.setU32(SB.bucketCount, g.bucketCount)
  mem.setU32(SB.bucketsAddr, g.bucketsAddr)
  mem.setU32(SB.heapStartPage, g.heapStartPage)
  mem.setU32(SB.heapNextPage, g.heapStartPage)
  mem.setU32(SB.recordCount, 0)
  mem.setF64(KERNEL.bootMs, bootMs)
}
