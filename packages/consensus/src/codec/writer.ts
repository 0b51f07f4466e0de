// Growable little-endian byte writer with unsigned LEB128 varints. Terms and indexes are small
// most of the time, so varints keep heartbeats and acks at a dozen bytes.

export class ByteWriter {
  private buf: Uint8Array
  private view: DataView
  pos = 0

  constructor(initialCapacity = 256) {
    // Unpooled and not zero-filled: every byte handed out by finish() has been written.
    this.buf = uninitialized(initialCapacity)
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength)
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return
    let cap = Math.max(16, this.buf.length * 2)
    while (cap < this.pos + n) cap *= 2
    const next = uninitialized(cap)
    next.set(this.buf.subarray(0, this.pos))
    this.buf = next
    this.view = new DataView(next.buffer, next.byteOffset, next.byteLength)
  }

  u8(v: number): void {
    this.ensure(1)
    this.buf[this.pos++] = v
  }

  u32(v: number): void {
    this.ensure(4)
    this.view.setUint32(this.pos, v, true)
    this.pos += 4
  }

  /** Unsigned varint; accepts any safe non-negative integer. */
  uvarint(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`uvarint out of range: ${v}`)
    this.ensure(8)
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80
      v = Math.floor(v / 0x80)
    }
    this.buf[this.pos++] = v
  }

  bytes(b: Uint8Array): void {
    this.uvarint(b.length)
    this.raw(b)
  }

  raw(b: Uint8Array): void {
    this.ensure(b.length)
    this.buf.set(b, this.pos)
    this.pos += b.length
  }

  /** Reserve 4 bytes to patch later (e.g. a length prefix); returns their offset. */
  reserve32(): number {
    this.ensure(4)
    const at = this.pos
    this.pos += 4
    return at
  }

  patch32(at: number, v: number): void {
    this.view.setUint32(at, v, true)
  }

  /** A view of the written bytes (valid until the next write). */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos)
  }
}

/** A plain Uint8Array (not a Buffer, so values compare as the shared types say) without zero-fill. */
function uninitialized(n: number): Uint8Array {
  const b = Buffer.allocUnsafeSlow(n)
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
}
