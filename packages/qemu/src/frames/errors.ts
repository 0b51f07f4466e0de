// Typed errors of the filter-redirector frame channel.

/** The bytes on a redirector socket do not follow the length-prefixed frame format. */
export class FrameDecodeError extends Error {
  override readonly name = 'FrameDecodeError'
}

/** A frame was given for a direction whose socket is not connected (it is counted as a drop). */
export class FrameChannelClosedError extends Error {
  override readonly name = 'FrameChannelClosedError'
}
