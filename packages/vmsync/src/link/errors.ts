// Typed link failures, so the sync protocol can tell "peer gone" from "peer sent garbage". The
// TCP link maps its SecureChannelError (from @plover/consensus) onto these; that error, with its
// precise `reason`, is the `cause`.

export class LinkError extends Error {
  override name = 'LinkError'
}

/**
 * The peer failed the PSK challenge-response (wrong key, unexpected role, replayed or reflected
 * handshake, handshake timeout), or a frame's MAC did not verify, or a frame was replayed or
 * reordered.
 */
export class LinkAuthError extends LinkError {
  override name = 'LinkAuthError'
}

/** Bytes on the wire that are not a valid frame (bad magic, other protocol, oversized length, truncated). */
export class LinkFrameError extends LinkError {
  override name = 'LinkFrameError'
}

/** send() on a link that is closed, or the link closed while waiting. */
export class LinkClosedError extends LinkError {
  override name = 'LinkClosedError'
}
