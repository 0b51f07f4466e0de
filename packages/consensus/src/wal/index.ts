export { StorageError, type StorageErrorKind } from './errors.js'
export {
  decodeRecordBody,
  type FrameResult,
  RecordType,
  readFrame,
  type WalRecord,
  writeRecord,
} from './record.js'
export { LogReplay } from './replay.js'
export {
  decodeSnapshotFile,
  decodeSnapshotHeader,
  encodeSnapshotFile,
  type SnapshotHeader,
} from './snapshot-file.js'
export { type Recovered, type SaveBatch, Wal, type WalOptions } from './wal.js'
