// Binary codec for sync messages: `magic u8 | version u8 | type u8 | epoch u64 | body`.
// decodeSyncMessage throws only MalformedMessageError.
import { MalformedMessageError } from './errors.js'
import { type SyncMessage, SyncMessageType, SyncMode } from './messages.js'
import { WireReader, WireWriter } from './wire.js'

const MAGIC = 0x5c
// Version 2: Dirty carries the backup's baseline id, TransferEnd the transfer's id.
// Version 3: Dirty carries the backup's device-state base, TransferEnd the delta's base.
// Version 4: PrecopyOffer, PrecopyPages and the Deferred sync mode.
const VERSION = 4
const CHECKSUM_BYTES = 16
const MAX_REASON_BYTES = 4096

export function encodeSyncMessage(m: SyncMessage): Uint8Array {
  const extra =
    m.type === SyncMessageType.Pages || m.type === SyncMessageType.PrecopyPages
      ? m.data.length + m.indices.length * 4
      : m.type === SyncMessageType.PrecopyOffer || m.type === SyncMessageType.Hashes
        ? m.hashes.length
        : 0
  const w = new WireWriter(64 + extra)
  w.u8(MAGIC).u8(VERSION).u8(m.type).u64(m.epoch)
  switch (m.type) {
    case SyncMessageType.Dirty:
      w.u8(m.needFull ? 1 : 0)
        .u64(m.baseline)
        .u64(m.deviceBase)
        .u32s(m.pages)
      break
    case SyncMessageType.Union:
      w.u8(m.mode).u32s(m.pages)
      break
    case SyncMessageType.Hashes:
    case SyncMessageType.PrecopyOffer:
      w.bytes(m.hashes)
      break
    case SyncMessageType.Pages:
    case SyncMessageType.PrecopyPages:
      // Same layout; the u32 is the batch sequence (Pages) or the pre-copy round.
      w.u32(m.type === SyncMessageType.Pages ? m.seq : m.round)
        .u32s(m.indices)
        .bytes(m.data)
      break
    case SyncMessageType.TransferEnd:
      if (m.checksum.length !== CHECKSUM_BYTES) throw new RangeError('checksum must be 16 bytes')
      w.u32(m.pageCount)
        .u32(m.batchCount)
        .u64(m.syncId)
        .bytes(m.checksum)
        .u64(m.deviceStateBase)
        .bytes(m.deviceState)
      break
    case SyncMessageType.Ack:
      break
    case SyncMessageType.Abort:
      w.bytes(Buffer.from(m.reason.slice(0, MAX_REASON_BYTES), 'utf8'))
      break
  }
  return w.finish()
}

export function decodeSyncMessage(buf: Uint8Array): SyncMessage {
  const r = new WireReader(buf)
  const magic = r.u8('magic')
  if (magic !== MAGIC) throw new MalformedMessageError(`bad magic 0x${magic.toString(16)}`, 0)
  const version = r.u8('version')
  if (version !== VERSION) throw new MalformedMessageError(`unsupported version ${version}`, 1)
  const type = r.u8('type')
  const epoch = r.u64('epoch')
  let m: SyncMessage
  switch (type) {
    case SyncMessageType.Dirty: {
      const flag = r.u8('needFull')
      if (flag > 1) r.fail(`bad needFull flag ${flag}`)
      const baseline = r.u64('baseline')
      const deviceBase = r.u64('deviceBase')
      m = { type, epoch, needFull: flag === 1, baseline, deviceBase, pages: r.ascendingU32s('dirty pages') }
      break
    }
    case SyncMessageType.Union: {
      const mode = r.u8('mode')
      if (!(mode in SyncMode) || typeof SyncMode[mode] !== 'string') r.fail(`bad sync mode ${mode}`)
      m = { type, epoch, mode, pages: r.ascendingU32s('union pages') }
      break
    }
    case SyncMessageType.Hashes:
    case SyncMessageType.PrecopyOffer: {
      const hashes = Uint8Array.from(r.bytes('hashes'))
      if (hashes.length % CHECKSUM_BYTES !== 0) r.fail(`hash bytes ${hashes.length} not a multiple of 16`)
      m = { type, epoch, hashes }
      break
    }
    case SyncMessageType.Pages:
    case SyncMessageType.PrecopyPages: {
      const seq = r.u32(type === SyncMessageType.Pages ? 'seq' : 'round')
      const indices = r.ascendingU32s('page indices')
      const data = r.bytes('page data')
      if (indices.length === 0 || data.length % indices.length !== 0) {
        r.fail(`page data ${data.length} bytes does not split into ${indices.length} pages`)
      }
      m =
        type === SyncMessageType.Pages
          ? { type, epoch, seq, indices, data }
          : { type, epoch, round: seq, indices, data }
      break
    }
    case SyncMessageType.TransferEnd: {
      const pageCount = r.u32('pageCount')
      const batchCount = r.u32('batchCount')
      const syncId = r.u64('syncId')
      const checksum = Uint8Array.from(r.bytes('checksum'))
      if (checksum.length !== CHECKSUM_BYTES) r.fail(`checksum is ${checksum.length} bytes, want 16`)
      const deviceStateBase = r.u64('deviceStateBase')
      m = {
        type,
        epoch,
        pageCount,
        batchCount,
        syncId,
        checksum,
        deviceStateBase,
        deviceState: Uint8Array.from(r.bytes('device state')),
      }
      break
    }
    case SyncMessageType.Ack:
      m = { type, epoch }
      break
    case SyncMessageType.Abort: {
      const reason = r.bytes('reason')
      if (reason.length > MAX_REASON_BYTES) r.fail('abort reason too long')
      m = { type, epoch, reason: Buffer.from(reason).toString('utf8') }
      break
    }
    default:
      throw new MalformedMessageError(`unknown message type ${type}`, 2)
  }
  r.end(SyncMessageType[type])
  return m
}
