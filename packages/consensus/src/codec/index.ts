export { crc32c } from './crc32c.js'
export { DecodeError } from './errors.js'
export { DEFAULT_LIMITS, type DecodeLimits } from './limits.js'
export { decodeMessage, encodeMessage, MESSAGE_VERSION } from './message.js'
export { ByteReader } from './reader.js'
export {
  readEntry,
  readHardState,
  readMembership,
  readSnapshotMeta,
  writeEntry,
  writeHardState,
  writeMembership,
  writeSnapshotMeta,
} from './structs.js'
export { ByteWriter } from './writer.js'
