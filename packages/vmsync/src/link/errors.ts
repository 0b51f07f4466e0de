// Typed link failures, so the sync protocol can tell "peer gone" from "peer sent garbage".

export class LinkError extends Error {
  override name = 'LinkError'
}

/** The peer failed the PSK challenge-response, or a frame's MAC did not verify. */
export class LinkAuthError extends LinkError {
  override name = 'LinkAuthError'
}

/** Bytes on the wire that are not a valid frame (bad magic, oversized length, truncated). */
export class LinkFrameError extends LinkError {
  override name = 'LinkFrameError'
}

/** send() on a link that is closed, or the link closed while waiting. */
export class LinkClosedError extends LinkError {
  override name = 'LinkClosedError'
}
