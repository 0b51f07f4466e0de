// Typed decode failure. Every decoder in this package throws only this for bad input, so a
// caller (transport, WAL recovery) can drop the frame / stop the scan without guessing.
export class DecodeError extends Error {
  override readonly name = 'DecodeError'
  constructor(
    message: string,
    /** Byte offset in the input where decoding failed. */
    readonly offset: number,
  ) {
    super(`${message} (at byte ${offset})`)
  }
}
