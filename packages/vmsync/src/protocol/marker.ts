// Payloads of the two log records the sync protocol puts into the consensus log. They are tiny:
// page data goes over the sync link, the log only orders the cut and the completion.
import { WireReader, WireWriter } from './wire.js'

const MARKER_VERSION = 1

export interface SyncMarker {
  /** Strictly increasing per sync; every link message of this sync carries it. */
  readonly epoch: number
  /** Frames the primary had emitted when it proposed the marker (PLOVER's output count). */
  readonly outputCount: number
}

export function encodeSyncMarker(m: SyncMarker): Uint8Array {
  return new WireWriter(24).u8(MARKER_VERSION).u64(m.epoch).u64(m.outputCount).finish()
}

/** Throws MalformedMessageError on bad bytes. */
export function decodeSyncMarker(data: Uint8Array): SyncMarker {
  const r = new WireReader(data)
  const v = r.u8('marker version')
  if (v !== MARKER_VERSION) r.fail(`unsupported marker version ${v}`)
  const m = { epoch: r.u64('epoch'), outputCount: r.u64('outputCount') }
  r.end('SyncMarker')
  return m
}

export interface SyncDone {
  readonly epoch: number
}

export function encodeSyncDone(d: SyncDone): Uint8Array {
  return new WireWriter(16).u8(MARKER_VERSION).u64(d.epoch).finish()
}

export function decodeSyncDone(data: Uint8Array): SyncDone {
  const r = new WireReader(data)
  const v = r.u8('sync-done version')
  if (v !== MARKER_VERSION) r.fail(`unsupported sync-done version ${v}`)
  const d = { epoch: r.u64('epoch') }
  r.end('SyncDone')
  return d
}
