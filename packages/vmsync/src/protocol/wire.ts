// Bounds-checked byte writer/reader for sync messages. Every read checks the remaining length
// and throws MalformedMessageError, so garbage can never surface as a RangeError or make us
// allocate more than the bytes present.
import { MalformedMessageError } from './errors.js'

export class WireWriter {
  private buf: Uint8Array
  private view: DataView
  pos = 0

  constructor(initial = 256) {
    this.buf = new Uint8Array(initial)
    this.view = new DataView(this.buf.buffer)
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.pos + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.pos))
    this.buf = next
    this.view = new DataView(next.buffer)
  }

  u8(v: number): this {
    this.ensure(1)
    this.buf[this.pos++] = v
    return this
  }

  u32(v: number): this {
    this.ensure(4)
    this.view.setUint32(this.pos, v, true)
    this.pos += 4
    return this
  }

  /** Non-negative safe integer as u64. */
  u64(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`not a u64-safe integer: ${v}`)
    this.ensure(8)
    this.view.setBigUint64(this.pos, BigInt(v), true)
    this.pos += 8
    return this
  }

  bytes(b: Uint8Array): this {
    this.u32(b.length)
    this.ensure(b.length)
    this.buf.set(b, this.pos)
    this.pos += b.length
    return this
  }

  u32s(a: Uint32Array): this {
    this.u32(a.length)
    this.ensure(a.length * 4)
    for (let i = 0; i < a.length; i++) this.view.setUint32(this.pos + i * 4, a[i], true)
    this.pos += a.length * 4
    return this
  }

  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos)
  }
}

export class WireReader {
  private readonly view: DataView
  pos = 0

  constructor(readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  }

  get remaining(): number {
    return this.buf.length - this.pos
  }

  fail(msg: string): never {
    throw new MalformedMessageError(msg, this.pos)
  }

  private need(n: number, what: string): void {
    if (this.buf.length - this.pos < n)
      this.fail(`truncated ${what}: need ${n} bytes, have ${this.remaining}`)
  }

  u8(what: string): number {
    this.need(1, what)
    return this.buf[this.pos++]
  }

  u32(what: string): number {
    this.need(4, what)
    const v = this.view.getUint32(this.pos, true)
    this.pos += 4
    return v
  }

  u64(what: string): number {
    this.need(8, what)
    const v = this.view.getBigUint64(this.pos, true)
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} out of range`)
    this.pos += 8
    return Number(v)
  }

  /** Length-prefixed bytes, returned as a view (caller copies if it keeps them past the message). */
  bytes(what: string): Uint8Array {
    const n = this.u32(`${what} length`)
    this.need(n, what)
    const out = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return out
  }

  /** Length-prefixed u32 list; must be strictly ascending (page sets are sets). */
  ascendingU32s(what: string): Uint32Array {
    const n = this.u32(`${what} count`)
    this.need(n * 4, what)
    const out = new Uint32Array(n)
    for (let i = 0; i < n; i++) {
      const v = this.view.getUint32(this.pos + i * 4, true)
      if (i > 0 && v <= out[i - 1]) this.fail(`${what} not strictly ascending at item ${i}`)
      out[i] = v
    }
    this.pos += n * 4
    return out
  }

  end(what: string): void {
    if (this.remaining !== 0) this.fail(`${this.remaining} trailing bytes after ${what}`)
  }
}
