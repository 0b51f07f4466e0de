// Length-prefixed frames on a TCP byte stream: u32 big-endian length, then that many bytes.
// The decoder checks the length against a maximum BEFORE buffering, so a bogus 4 GiB length
// costs nothing, and it assembles a large frame from its chunks with a single copy.

export class FrameError extends Error {
  override readonly name = 'FrameError'
}

export function frameHeader(len: number): Buffer {
  const h = Buffer.allocUnsafe(4)
  h.writeUInt32BE(len, 0)
  return h
}

export class FrameDecoder {
  private chunks: Buffer[] = []
  private have = 0
  private need = -1

  /** Mutable: a connection raises it once the small-frame handshake is over. */
  constructor(public maxFrameBytes: number) {}

  /** Bytes buffered but not yet returned as a frame. */
  get buffered(): number {
    return this.have
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return
    this.chunks.push(chunk)
    this.have += chunk.length
  }

  /** The next complete frame, or undefined. Throws FrameError on an oversized length. */
  next(): Buffer | undefined {
    if (this.need < 0) {
      if (this.have < 4) return undefined
      const len = this.take(4).readUInt32BE(0)
      if (len > this.maxFrameBytes)
        throw new FrameError(`frame length ${len} exceeds max ${this.maxFrameBytes}`)
      this.need = len
    }
    if (this.have < this.need) return undefined
    const frame = this.take(this.need)
    this.need = -1
    return frame
  }

  private take(n: number): Buffer {
    this.have -= n
    const first = this.chunks[0]
    if (n === 0) return Buffer.alloc(0)
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift()
      else this.chunks[0] = first.subarray(n)
      return first.subarray(0, n)
    }
    const out = Buffer.allocUnsafe(n)
    let off = 0
    while (off < n) {
      const c = this.chunks[0]
      const k = Math.min(c.length, n - off)
      c.copy(out, off, 0, k)
      off += k
      if (k === c.length) this.chunks.shift()
      else this.chunks[0] = c.subarray(k)
    }
    return out
  }
}
