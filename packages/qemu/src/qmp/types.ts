/** QEMU run states (`query-status`), QEMU 7.2. */
export type RunState =
  | 'debug'
  | 'inmigrate'
  | 'internal-error'
  | 'io-error'
  | 'paused'
  | 'postmigrate'
  | 'prelaunch'
  | 'finish-migrate'
  | 'restore-vm'
  | 'running'
  | 'save-vm'
  | 'shutdown'
  | 'suspended'
  | 'watchdog'
  | 'guest-panicked'
  | 'colo'

export interface StatusInfo {
  readonly running: boolean
  readonly status: RunState
  readonly singlestep?: boolean
}

export type MigrationStatus =
  | 'none'
  | 'setup'
  | 'cancelling'
  | 'cancelled'
  | 'active'
  | 'postcopy-active'
  | 'postcopy-paused'
  | 'postcopy-recover'
  | 'completed'
  | 'failed'
  | 'colo'
  | 'pre-switchover'
  | 'device'
  | 'wait-unplug'

export interface MigrationRamStats {
  readonly transferred: number
  readonly remaining: number
  readonly total: number
  readonly duplicate: number
  readonly normal: number
  readonly 'normal-bytes': number
  readonly 'dirty-pages-rate'?: number
  readonly mbps?: number
  readonly 'dirty-sync-count'?: number
  readonly 'postcopy-requests'?: number
  readonly 'page-size'?: number
  readonly 'multifd-bytes'?: number
  readonly 'pages-per-second'?: number
  readonly 'precopy-bytes'?: number
  readonly 'downtime-bytes'?: number
  readonly 'postcopy-bytes'?: number
}

/** `query-migrate` reply (fields QEMU omits in a given state are absent). */
export interface MigrationInfo {
  readonly status?: MigrationStatus
  readonly ram?: MigrationRamStats
  readonly 'total-time'?: number
  readonly 'expected-downtime'?: number
  readonly downtime?: number
  readonly 'setup-time'?: number
  readonly 'error-desc'?: string
  readonly 'blocked-reasons'?: readonly string[]
}

/** A migration capability and its state, as `migrate-set-capabilities` takes them. */
export interface MigrationCapabilityState {
  readonly capability: string
  readonly state: boolean
}

export interface MigrateOptions {
  /** Resume a paused migration / detach (QEMU's flags; usually omitted). */
  readonly detach?: boolean
  readonly resume?: boolean
}

/** `object-add` arguments (QEMU 7.2 takes the properties flat beside `qom-type` and `id`). */
export interface ObjectAddArgs {
  readonly 'qom-type': string
  readonly id: string
  readonly [property: string]: unknown
}

export interface BlockDeviceStats {
  readonly rd_bytes: number
  readonly wr_bytes: number
  readonly rd_operations: number
  readonly wr_operations: number
  readonly flush_operations: number
  readonly [more: string]: unknown
}

export interface BlockStats {
  readonly device?: string
  readonly node_name?: string
  readonly qdev?: string
  readonly stats: BlockDeviceStats
  readonly [more: string]: unknown
}

/** Data of the QMP events Plover reacts to (QEMU sends more; those arrive untyped). */
export interface QmpEventDataMap {
  STOP: Record<string, never>
  RESUME: Record<string, never>
  SHUTDOWN: { readonly guest: boolean; readonly reason: string }
  RESET: { readonly guest: boolean; readonly reason: string }
  POWERDOWN: Record<string, never>
  MIGRATION: { readonly status: MigrationStatus }
  MIGRATION_PASS: { readonly pass: number }
  GUEST_PANICKED: { readonly action: string; readonly info?: Record<string, unknown> }
  NIC_RX_FILTER_CHANGED: { readonly name?: string; readonly path: string }
}

export type KnownQmpEventName = keyof QmpEventDataMap

/** An asynchronous QMP event. For known names `data` is typed. */
export interface QmpEvent<N extends string = string> {
  readonly event: N
  readonly data: N extends KnownQmpEventName ? QmpEventDataMap[N] : Record<string, unknown>
  readonly timestamp: { readonly seconds: number; readonly microseconds: number }
}
