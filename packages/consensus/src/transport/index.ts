export {
  type FrameCheck,
  FrameCipher,
  type HandshakeRole,
  handshakeProof,
  MAC_BYTES,
  MIN_KEY_BYTES,
  NONCE_BYTES,
  PROOF_BYTES,
  SEQ_BYTES,
  type SealedFrame,
  type SessionKeys,
  sessionKeys,
} from './auth.js'
export { Connection, type ConnectionConfig, type ConnectionEvents, TRANSPORT_CONTEXT } from './connection.js'
export { FrameDecoder, FrameError, frameHeader } from './framing.js'
export {
  decodeChallenge,
  decodeHello,
  decodeProof,
  encodeChallenge,
  encodeHello,
  encodeProof,
  HANDSHAKE_VERSION,
  MAX_CONTEXT_BYTES,
  MAX_HANDSHAKE_FRAME,
} from './handshake.js'
export {
  DEFAULT_MAX_FRAME_BYTES,
  SecureChannel,
  type SecureChannelAcceptorOptions,
  type SecureChannelDialerOptions,
  SecureChannelError,
  type SecureChannelEvents,
  type SecureChannelFailure,
  type SecureChannelOptions,
} from './secure-channel.js'
export {
  type PeerAddress,
  type PeerStats,
  TcpTransport,
  type TransportEvents,
  type TransportOptions,
} from './transport.js'
