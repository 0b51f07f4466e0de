// The sync protocol's link messages. Every message carries the epoch of the sync it belongs to;
// the epoch is the one in the SyncMarker log record that started that sync.

export enum SyncMessageType {
  /** backup -> primary: paused at the marker; here is my dirty set (or: I need a full sync). */
  Dirty = 1,
  /** primary -> backup: the page set this sync covers, and how it will be transferred. */
  Union = 2,
  /** backup -> primary: one 128-bit hash per page of the union, in union order. */
  Hashes = 3,
  /** primary -> backup: a batch of page contents. */
  Pages = 4,
  /** primary -> backup: transfer complete — counts, checksum, device state. */
  TransferEnd = 5,
  /** backup -> primary: everything applied. */
  Ack = 6,
  /** either way: give up this epoch. */
  Abort = 7,
  /**
   * backup -> primary, outside any sync: my VM is untrusted and now paused; here is a hash of
   * every page. The primary may pre-copy (PrecopyPages) while its own VM runs, so the full sync
   * that follows finds most pages identical. Its epoch field is 0: it belongs to no sync.
   */
  PrecopyOffer = 8,
  /**
   * primary -> backup, outside any sync: pages read from the running VM, written straight into
   * the untrusted backup. Only an optimisation: the full sync still compares every page.
   */
  PrecopyPages = 9,
}

/** Messages that belong to no sync epoch (SyncChannel hands them over as they arrive). */
export function isPrecopyMessage(m: SyncMessage): m is PrecopyOfferMsg | PrecopyPagesMsg {
  return m.type === SyncMessageType.PrecopyOffer || m.type === SyncMessageType.PrecopyPages
}

export enum SyncMode {
  /** VSMR/PLOVER: hash the union on both sides, send only divergent pages. */
  Vsmr = 0,
  /** Remus-style: send every page of the union, no hashing (for comparison). */
  Remus = 1,
  /** New or restarted backup: every page of the VM, sent without comparing. */
  Full = 2,
  /**
   * New or restarted backup, compared: every page is hashed on both sides and only the divergent
   * ones are sent (pages the fresh backup already has — zero pages, the same kernel — are not).
   * The primary copies all of RAM while paused and resumes before the transfer, as in Vsmr.
   */
  FullCompared = 3,
  /**
   * No transfer at this marker: the backup asked for a full sync but its pre-copy is still
   * converging. Both sides go on (the primary unprotected, the backup paused and untrusted).
   */
  Deferred = 4,
}

/** A full sync (either form): the union is every page and the backup's state is replaced. */
export function isFullSync(mode: SyncMode): boolean {
  return mode === SyncMode.Full || mode === SyncMode.FullCompared
}

/** The backup hashes the union and the primary sends only the divergent pages. */
export function isHashedSync(mode: SyncMode): boolean {
  return mode === SyncMode.Vsmr || mode === SyncMode.FullCompared
}

export interface DirtyMsg {
  readonly type: SyncMessageType.Dirty
  readonly epoch: number
  /** The backup's state is untrusted (fresh process, failed apply): send everything. */
  readonly needFull: boolean
  /**
   * Id of the transfer that set the backup's dirty baseline (the last one it applied; 0 = since
   * it started, as the caller asserted with needFull=false). The union of two dirty sets covers
   * every differing page only if both baselines are the same common state, so the primary syncs
   * incrementally only if its own baseline is this one (or it sent this transfer itself after
   * its baseline, the Ack being lost); otherwise it sends every page.
   */
  readonly baseline: number
  /**
   * Id of the transfer whose device state the backup keeps (0 = none): the primary may send the
   * next device state as a delta against it.
   */
  readonly deviceBase: number
  readonly pages: Uint32Array
}

export interface UnionMsg {
  readonly type: SyncMessageType.Union
  readonly epoch: number
  readonly mode: SyncMode
  /** Ascending. For Full mode this is empty: all pages are implied. */
  readonly pages: Uint32Array
}

export interface HashesMsg {
  readonly type: SyncMessageType.Hashes
  readonly epoch: number
  /** 16 bytes per union page. */
  readonly hashes: Uint8Array
}

export interface PagesMsg {
  readonly type: SyncMessageType.Pages
  readonly epoch: number
  /** 0, 1, 2 … within the epoch: a gap or repeat is detected before anything is applied. */
  readonly seq: number
  readonly indices: Uint32Array
  /** indices.length * pageSize bytes. */
  readonly data: Uint8Array
}

export interface TransferEndMsg {
  readonly type: SyncMessageType.TransferEnd
  readonly epoch: number
  readonly pageCount: number
  readonly batchCount: number
  /** Random non-zero id of this transfer: the backup's dirty baseline once applied. */
  readonly syncId: number
  /** xxhash128 over every (index, page) sent, in order. */
  readonly checksum: Uint8Array
  /** 0: deviceState is the whole state. Otherwise a delta against that transfer's device state. */
  readonly deviceStateBase: number
  /** The device state, or a delta (device-state-delta.ts); the checksum covers the whole state. */
  readonly deviceState: Uint8Array
}

export interface AckMsg {
  readonly type: SyncMessageType.Ack
  readonly epoch: number
}

export interface AbortMsg {
  readonly type: SyncMessageType.Abort
  readonly epoch: number
  readonly reason: string
}

export interface PrecopyOfferMsg {
  readonly type: SyncMessageType.PrecopyOffer
  readonly epoch: number
  /** 16 bytes per page of the VM, in page order. */
  readonly hashes: Uint8Array
}

export interface PrecopyPagesMsg {
  readonly type: SyncMessageType.PrecopyPages
  readonly epoch: number
  /** 1, 2 …: the pre-copy round these pages belong to. */
  readonly round: number
  readonly indices: Uint32Array
  /** indices.length * pageSize bytes. */
  readonly data: Uint8Array
}

export type SyncMessage =
  | DirtyMsg
  | UnionMsg
  | HashesMsg
  | PagesMsg
  | TransferEndMsg
  | AckMsg
  | AbortMsg
  | PrecopyOfferMsg
  | PrecopyPagesMsg

export function messageName(t: SyncMessageType): string {
  return SyncMessageType[t] ?? `type#${t}`
}
