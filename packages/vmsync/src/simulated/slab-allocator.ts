// Slab allocator over guest pages. Its registers (heap cursor, per-class free-list heads and carve
// cursors) are in the superblock, so a synced backup allocates exactly where the primary would.
// Nondeterminism: now and then an allocation takes the second free-list entry instead of the head
// (like a racing CPU), which moves a record and dirties different pages on the two replicas.
import { PAGE_SIZE } from '../vm/replicated-vm.js'
import { CLASS_STATE_BYTES, SB, SIZE_CLASSES } from './guest-layout.js'
import type { GuestMemory } from './guest-memory.js'

export function sizeClassFor(bytes: number): number {
  for (let c = 0; c < SIZE_CLASSES.length; c++) if (bytes <= SIZE_CLASSES[c]) return c
  return -1
}

const classAddr = (c: number) => SB.classes + c * CLASS_STATE_BYTES

/** Returns a record address of class `c`, or 0 when the heap is exhausted. */
export function allocate(mem: GuestMemory, c: number, swap: () => boolean): number {
  const base = classAddr(c)
  const head = mem.u32(base)
  if (head !== 0) {
    const second = mem.u32(head)
    if (second !== 0 && swap()) {
      mem.setU32(head, mem.u32(second))
      return second
    }
    mem.setU32(base, second)
    return head
  }
  const size = SIZE_CLASSES[c]
  let cursor = mem.u32(base + 4)
  const end = mem.u32(base + 8)
  if (cursor === 0 || cursor + size > end) {
    const page = mem.u32(SB.heapNextPage)
    if (page >= mem.pageCount) return 0
    mem.setU32(SB.heapNextPage, page + 1)
    cursor = page * PAGE_SIZE
    mem.setU32(base + 8, cursor + PAGE_SIZE)
  }
  mem.setU32(base + 4, cursor + size)
  return cursor
}

export function release(mem: GuestMemory, c: number, addr: number): void {
  const base = classAddr(c)
  mem.setU32(addr, mem.u32(base))
  mem.setU32(base, addr)
}
