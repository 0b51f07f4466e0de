// Payload of an Input log record: a batch of inbound frames.
// `version u8 | count u32 | (len u32 | frame)*`, little-endian. Decoding throws only FrameBatchError.

const VERSION = 1

export class FrameBatchError extends Error {
  override name = 'FrameBatchError'
}

export function encodeFrameBatch(frames: readonly Uint8Array[]): Uint8Array {
  let size = 5
  for (const f of frames) size += 4 + f.length
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  out[0] = VERSION
  view.setUint32(1, frames.length, true)
  let pos = 5
  for (const f of frames) {
    view.setUint32(pos, f.length, true)
    out.set(f, pos + 4)
    pos += 4 + f.length
  }
  return out
}

/** Frames are views into `data`. */
export function decodeFrameBatch(data: Uint8Array): Uint8Array[] {
  if (data.length < 5) throw new FrameBatchError(`input batch truncated: ${data.length} bytes`)
  if (data[0] !== VERSION) throw new FrameBatchError(`unsupported input batch version ${data[0]}`)
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  const count = view.getUint32(1, true)
  // Each frame needs at least its 4-byte length: bound the count by the bytes present.
  if (count > (data.length - 5) / 4)
    throw new FrameBatchError(`input batch claims ${count} frames in ${data.length} bytes`)
  const frames: Uint8Array[] = []
  let pos = 5
  for (let i = 0; i < count; i++) {
    if (data.length - pos < 4) throw new FrameBatchError(`input batch truncated at frame ${i}`)
    const len = view.getUint32(pos, true)
    pos += 4
    if (data.length - pos < len) throw new FrameBatchError(`input batch frame ${i} truncated`)
    frames.push(data.subarray(pos, pos + len))
    pos += len
  }
  if (pos !== data.length) throw new FrameBatchError(`${data.length - pos} trailing bytes after input batch`)
  return frames
}
