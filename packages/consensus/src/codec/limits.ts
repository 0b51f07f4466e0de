// Upper bounds the decoders enforce on top of "no more than the bytes present", so a peer cannot
// make us build a million empty entries or a membership of a billion members.

export interface DecodeLimits {
  /** Max entries in one message. */
  readonly maxEntries: number
  /** Max payload bytes of one entry or one snapshot. */
  readonly maxDataBytes: number
  /** Max members in a membership. */
  readonly maxMembers: number
}

export const DEFAULT_LIMITS: DecodeLimits = {
  maxEntries: 65_536,
  maxDataBytes: 64 * 1024 * 1024,
  maxMembers: 255,
}
