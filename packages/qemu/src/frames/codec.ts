// The wire format of QEMU's filter-redirector/filter-mirror chardevs (net/filter-mirror.c and
// net_fill_rstate in net/net.c): a 4-byte big-endian length, with vnet_hdr_support=on a second
// 4-byte big-endian vnet-header length, then `length` bytes of frame (vnet header included).
import { FrameDecodeError } from './errors.js'

/** QEMU's receive buffer (NET_BUFSIZE = 4096 + 65536): larger lengths can only be garbage. */
export const MAX_FRAME_BYTES = 4096 + 65536
/** Ethernet header; shorter frames cannot be real either. */
export const MIN_FRAME_BYTES = 14

export interface FrameCodecOptions {
  /** The redirector was created with vnet_hdr_support=on. */
  readonly vnetHdr?: boolean
  /** The vnet-header length written with every frame in that mode (virtio-net: 10 or 12). */
  readonly vnetHdrLen?: number
  readonly maxFrameBytes?: number
}

export function encodeFrame(frame: Uint8Array, options: FrameCodecOptions = {}): Buffer {
  const max = options.maxFrameBytes ?? MAX_FRAME_BYTES
  if (frame.byteLength === 0 || frame.byteLength > max) {
    throw new FrameDecodeError(`frame of ${frame.byteLength} bytes is outside 1..${max}`)
  }
  const header = options.vnetHdr ? 8 : 4
  const out = Buffer.allocUnsafe(header + frame.byteLength)
  out.writeUInt32BE(frame.byteLength, 0)
  if (options.vnetHdr) out.writeUInt32BE(options.vnetHdrLen ?? 0, 4)
  out.set(frame, header)
  return out
}

/**
 * Incremental decoder: feed socket chunks, get whole frames. Throws FrameDecodeError on a length
 * that cannot be a frame; the caller must then drop the connection (the stream cannot be resynced).
 */
export class FrameDecoder {
  readonly #header: number
  readonly #max: number
  readonly #min: number
  #chunks: Buffer[] = []
  #buffered = 0
  #failed = false
  /** vnet-header length of the last frame (vnet_hdr mode only). */
  lastVnetHdrLen = 0

  constructor(options: FrameCodecOptions = {}) {
    this.#header = options.vnetHdr ? 8 : 4
    this.#max = options.maxFrameBytes ?? MAX_FRAME_BYTES
    this.#min = options.vnetHdr ? 1 : MIN_FRAME_BYTES
  }

  get bufferedBytes(): number {
    return this.#buffered
  }

  /** Returns the frames completed by `chunk` (copies: chunks are not retained by callers). */
  push(chunk: Uint8Array): Buffer[] {
    if (this.#failed) throw new FrameDecodeError('decoder already failed; reconnect')
    this.#chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
    this.#buffered += chunk.byteLength
    const frames: Buffer[] = []
    for (;;) {
      if (this.#buffered < this.#header) break
      const head = this.#peek(this.#header)
      const len = head.readUInt32BE(0)
      if (len < this.#min || len > this.#max) {
        this.#failed = true
        throw new FrameDecodeError(`frame length ${len} outside ${this.#min}..${this.#max}`)
      }
      let vnetLen = 0
      if (this.#header === 8) {
        vnetLen = head.readUInt32BE(4)
        if (vnetLen > len) {
          this.#failed = true
          throw new FrameDecodeError(`vnet header length ${vnetLen} exceeds frame length ${len}`)
        }
      }
      if (this.#buffered < this.#header + len) break
      this.#consume(this.#header)
      frames.push(this.#consume(len))
      this.lastVnetHdrLen = vnetLen
    }
    return frames
  }

  #peek(n: number): Buffer {
    if (this.#chunks[0].byteLength >= n) return this.#chunks[0].subarray(0, n)
    const joined = Buffer.concat(this.#chunks)
    this.#chunks = [joined]
    return joined.subarray(0, n)
  }

  #consume(n: number): Buffer {
    const out = Buffer.allocUnsafe(n)
    let filled = 0
    while (filled < n) {
      const first = this.#chunks[0]
      const take = Math.min(first.byteLength, n - filled)
      first.copy(out, filled, 0, take)
      filled += take
      if (take === first.byteLength) this.#chunks.shift()
      else this.#chunks[0] = first.subarray(take)
    }
    this.#buffered -= n
    return out
  }
}
