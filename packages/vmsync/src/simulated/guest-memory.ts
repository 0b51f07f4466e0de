// Guest RAM of the simulated VM: a SharedArrayBuffer (so hash workers read it in place) behind a
// write barrier. Every store goes through here and marks its page(s) in the dirty map, which is
// what a hypervisor's dirty logging does for real guests.
import { PAGE_SIZE } from '../vm/replicated-vm.js'

export class GuestMemory {
  readonly buffer: SharedArrayBuffer
  readonly bytes: Uint8Array
  readonly view: DataView
  readonly pageCount: number
  /** One byte per page: 1 = written since the last clearDirty(). */
  readonly dirty: Uint8Array

  constructor(pageCount: number) {
    if (!Number.isInteger(pageCount) || pageCount < 1) throw new RangeError(`invalid page count ${pageCount}`)
    this.pageCount = pageCount
    this.buffer = new SharedArrayBuffer(pageCount * PAGE_SIZE)
    this.bytes = new Uint8Array(this.buffer)
    this.view = new DataView(this.buffer)
    this.dirty = new Uint8Array(pageCount)
  }

  private mark(addr: number, len: number): void {
    const first = Math.floor(addr / PAGE_SIZE)
    const last = Math.floor((addr + Math.max(1, len) - 1) / PAGE_SIZE)
    for (let p = first; p <= last; p++) this.dirty[p] = 1
  }

  u8(addr: number): number {
    return this.bytes[addr]
  }
  u16(addr: number): number {
    return this.view.getUint16(addr, true)
  }
  u32(addr: number): number {
    return this.view.getUint32(addr, true)
  }
  f64(addr: number): number {
    return this.view.getFloat64(addr, true)
  }

  setU8(addr: number, v: number): void {
    this.mark(addr, 1)
    this.bytes[addr] = v
  }
  setU16(addr: number, v: number): void {
    this.mark(addr, 2)
    this.view.setUint16(addr, v, true)
  }
  setU32(addr: number, v: number): void {
    this.mark(addr, 4)
    this.view.setUint32(addr, v >>> 0, true)
  }
  setF64(addr: number, v: number): void {
    this.mark(addr, 8)
    this.view.setFloat64(addr, v, true)
  }
  write(addr: number, src: Uint8Array): void {
    if (src.length === 0) return
    this.mark(addr, src.length)
    this.bytes.set(src, addr)
  }
  /** A view (not a copy) of guest bytes; callers copy if they keep it. */
  slice(addr: number, len: number): Uint8Array {
    return this.bytes.subarray(addr, addr + len)
  }

  /** Ascending list of pages written since the last clearDirty(). */
  dirtyPages(): Uint32Array {
    let n = 0
    for (let p = 0; p < this.pageCount; p++) n += this.dirty[p]
    const out = new Uint32Array(n)
    let i = 0
    for (let p = 0; p < this.pageCount; p++) if (this.dirty[p] === 1) out[i++] = p
    return out
  }

  clearDirty(): void {
    this.dirty.fill(0)
  }
}
