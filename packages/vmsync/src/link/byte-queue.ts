// Accumulates TCP chunks and hands out exact byte counts, copying only when a read spans
// chunks. Used by the handshake and the frame reader.

export class ByteQueue {
  private chunks: Buffer[] = []
  private head = 0
  private total = 0

  get length(): number {
    return this.total
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return
    this.chunks.push(chunk)
    this.total += chunk.length
  }

  /** Reads `n` bytes as a u32 big-endian without consuming them; undefined if fewer than 4. */
  peekU32BE(): number | undefined {
    if (this.total < 4) return undefined
    const b = this.peek(4)
    return b.readUInt32BE(0)
  }

  /** Consumes exactly `n` bytes (caller checked `length >= n`). */
  take(n: number): Buffer {
    const out = this.peek(n)
    this.skip(n)
    return out
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0]
    if (first && first.length - this.head >= n) return first.subarray(this.head, this.head + n)
    const out = Buffer.allocUnsafe(n)
    let filled = 0
    let off = this.head
    for (const c of this.chunks) {
      const part = Math.min(c.length - off, n - filled)
      c.copy(out, filled, off, off + part)
      filled += part
      off = 0
      if (filled === n) break
    }
    return out
  }

  private skip(n: number): void {
    this.total -= n
    while (n > 0) {
      const first = this.chunks[0]
      const avail = first.length - this.head
      if (avail > n) {
        this.head += n
        return
      }
      n -= avail
      this.chunks.shift()
      this.head = 0
    }
  }
}
