export { FrameMac, handshakeProof, MAC_BYTES, NONCE_BYTES, sessionKeys } from './auth.js'
export { Connection, type ConnectionConfig, type ConnectionEvents } from './connection.js'
export { FrameDecoder, FrameError, frameHeader } from './framing.js'
export {
  decodeChallenge,
  decodeHello,
  decodeProof,
  encodeChallenge,
  encodeHello,
  encodeProof,
} from './handshake.js'
export {
  type PeerAddress,
  type PeerStats,
  TcpTransport,
  type TransportEvents,
  type TransportOptions,
} from './transport.js'
