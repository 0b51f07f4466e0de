import { DecodeError } from './errors.js'

// Bounds-checked reader over untrusted bytes. Every read checks the remaining length first and
// throws DecodeError, so no RangeError from DataView/subarray can escape a decoder, and no
// length field can make us allocate more than the bytes actually present.

export class ByteReader {
  private readonly view: DataView
  pos: number

  constructor(
    readonly buf: Uint8Array,
    start = 0,
    readonly end = buf.length,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
    this.pos = start
  }

  get remaining(): number {
    return this.end - this.pos
  }

  fail(msg: string): never {
    throw new DecodeError(msg, this.pos)
  }

  private need(n: number, what: string): void {
    if (this.end - this.pos < n) this.fail(`truncated ${what}: need ${n} bytes, have ${this.end - this.pos}`)
  }

  u8(what = 'u8'): number {
    this.need(1, what)
    return this.buf[this.pos++]
  }

  u32(what = 'u32'): number {
    this.need(4, what)
    const v = this.view.getUint32(this.pos, true)
    this.pos += 4
    return v
  }

  /** Unsigned varint limited to Number.MAX_SAFE_INTEGER (8 bytes of 7 bits = 2^56 > 2^53). */
  uvarint(what = 'varint'): number {
    let v = 0
    let mul = 1
    for (let i = 0; i < 8; i++) {
      this.need(1, what)
      const b = this.buf[this.pos++]
      v += (b & 0x7f) * mul
      if (b < 0x80) {
        if (!Number.isSafeInteger(v)) this.fail(`${what} exceeds 2^53`)
        if (i > 0 && b === 0) this.fail(`${what} not minimally encoded`)
        return v
      }
      mul *= 0x80
    }
    return this.fail(`${what} longer than 8 bytes`)
  }

  /** Varint that must not exceed `max` (bounds counts and lengths before anything is allocated). */
  bounded(max: number, what: string): number {
    const at = this.pos
    const v = this.uvarint(what)
    if (v > max) throw new DecodeError(`${what} ${v} exceeds limit ${max}`, at)
    return v
  }

  /** Length-prefixed bytes; a zero-copy view into the input. */
  bytes(maxLen: number, what: string): Uint8Array {
    const len = this.bounded(Math.min(maxLen, this.remaining), `${what} length`)
    const out = this.buf.subarray(this.pos, this.pos + len)
    this.pos += len
    return out
  }

  raw(n: number, what: string): Uint8Array {
    this.need(n, what)
    const out = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return out
  }

  bool(what: string): boolean {
    const b = this.u8(what)
    if (b > 1) this.fail(`${what}: bad boolean ${b}`)
    return b === 1
  }

  expectEnd(what: string): void {
    if (this.pos !== this.end) this.fail(`${this.end - this.pos} trailing bytes after ${what}`)
  }
}
