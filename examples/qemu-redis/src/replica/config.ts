// A replica process's configuration (the JSON of its --config file; see load-config.ts for
// parsing, defaults and validation), and what it reports back over the optional IPC channel (the
// orchestrator's) — the `status` message is also what GET /status returns.
import type { SyncReport } from '@plover/vmsync'

export interface PeerEntry {
  readonly id: number
  readonly role: 'voter' | 'witness'
  readonly host: string
  readonly consensusPort: number
  readonly syncPort?: number
}

export interface VmSettings {
  /** QEMU name (run dir, standby names). */
  readonly name: string
  readonly memoryMiB: number
  readonly ramPath: string
  /** Tap device the booting QEMU opens (already on the bridge). */
  readonly tap: string
  /** Bridge for the standbys' taps (one tap per QEMU process). */
  readonly bridge: string
  /** Name prefix for the standbys' taps (the TestNetwork's id, so its dispose() removes them). */
  readonly tapPrefix: string
  /** Guest address with prefix length, identical on primary and backup. */
  readonly ip: string
  readonly kernel: string
  readonly initrd: string
  /**
   * How hash workers read the guest's RAM file: 'auto' (default: a memory mapping when
   * @plover/mapped-file is built, else pread), 'mmap' or 'pread'.
   */
  readonly hashFileReads?: 'auto' | 'mmap' | 'pread'
  /**
   * The form of the device state this replica sends as primary: 'snapshot' (default; loaded into
   * the backup's running QEMU) or 'migration' (loaded into a standby QEMU swapped in). A backup
   * takes either.
   */
  readonly deviceState?: 'snapshot' | 'migration'
}

export interface SyncTuning {
  readonly maxIntervalMs: number
  readonly minIntervalMs: number
  readonly maxHeldAgeMs: number
  readonly periodMs: number
  /**
   * Sync once output is held and the guest emitted none for this many idle-monitor periods
   * (the policy's output-settled trigger). Unset: off.
   */
  readonly outputSettledSamples?: number
  /**
   * Before pausing for a sync, each side waits until its guest emitted no frame for
   * `quietWindowMs` (default 5), at most `quietMaxMs` (default 50): a backup that lags behind
   * the primary finishes the epoch's requests first (more identical pages, later replies).
   */
  readonly quietWindowMs?: number
  readonly quietMaxMs?: number
  /**
   * Benchmarks: sync every `fixedIntervalMs` instead of when the idle monitor says so (same
   * preconditions: a caught-up backup, one sync at a time). Unset: the idle monitor (default).
   */
  readonly fixedIntervalMs?: number
}

/** The replica's HTTP endpoint: GET /metrics (Prometheus), GET /status, POST /admin/membership. */
export interface MetricsEndpoint {
  /** Default: this replica's `host` from the address book. */
  readonly host: string
  readonly port: number
  /** Bearer token for POST /admin/membership (>= 16 characters); unset: that route is off. */
  readonly adminToken?: string
  /** Serve HTTPS with this certificate and key (PEM files) instead of plain HTTP. */
  readonly tls?: { readonly certFile: string; readonly keyFile: string }
}

export interface ReplicaProcessConfig {
  readonly id: number
  readonly dataDir: string
  readonly clusterKeyHex: string
  /** Address book: every replica that is or may become a member (a spare included). */
  readonly replicas: readonly PeerEntry[]
  /**
   * Membership at the first start of a fresh data dir. A spare joining a running cluster lists the
   * current members plus itself as learner.
   */
  readonly bootstrap: readonly { readonly id: number; readonly role: 'voter' | 'witness' | 'learner' }[]
  readonly tickMs: number
  readonly electionTicks: number
  /** Compact the consensus log at a sync cut once this many records lie before it (LogCompaction). */
  readonly compactAfterEntries: number
  /**
   * A clean shutdown (SIGTERM) that takes longer is abandoned with exit code 1; the kernel then
   * kills the QEMU processes (setpriv --pdeathsig). Default 10 s.
   */
  readonly shutdownTimeoutMs: number
  readonly vm?: VmSettings
  readonly sync: SyncTuning
  /** vmsync mode: 'vsmr' (default: divergent pages only) or 'remus' (every dirty page). */
  readonly syncMode?: 'vsmr' | 'remus'
  /**
   * Pre-copy a new backup's RAM while the primary runs, before its full sync (default true;
   * false: the full sync copies all of RAM while the primary is paused).
   */
  readonly precopy?: boolean
  /**
   * Syncs compare the digests the hash-scan tracker made while finding the dirty pages (default
   * true); false hashes the compared pages again (benchmarks measure what the reuse saves).
   */
  readonly reuseScanDigests?: boolean
  /** Benchmarks: send a `sync-report` message per sync this replica completes (either side). */
  readonly reportSyncs?: boolean
  /** HTTP metrics/status endpoint; none without it. */
  readonly metrics?: MetricsEndpoint
}

export interface ReplicaStatus {
  readonly type: 'status'
  readonly id: number
  readonly pid: number
  readonly consensusRole: string
  readonly leader: number
  readonly term: number
  readonly commitIndex: number
  /** First index still in the log (> 1 once compacted, or joined from a snapshot). */
  readonly logFirstIndex: number
  /** Log compactions at sync cuts by this process. */
  readonly compactions: number
  /** e.g. `2:voter 3:witness 4:learner` */
  readonly members: string
  readonly vm?: {
    readonly role: 'primary' | 'backup'
    readonly trusted: boolean
    readonly protected: boolean
    readonly hasBackup: boolean
    readonly qemuPid: number
    readonly syncs: number
    readonly fullSyncs: number
    readonly syncFailures: number
    readonly lastPauseMs: number
    readonly lastIdenticalPercent: number
    readonly inputFrames: number
    readonly releasedFrames: number
    readonly discardedOwnTapFrames: number
    readonly heldFrames: number
    /** Bytes of the input frames this replica put into the log as primary. */
    readonly inputBytes?: number
  }
}

/** The SyncReport fields a replica forwards over IPC (mode as its name: enums do not survive JSON). */
export type SyncReportFields = Pick<
  SyncReport,
  | 'dirtyPages'
  | 'peerDirtyPages'
  | 'unionPages'
  | 'identicalPages'
  | 'identicalPct'
  | 'divergentPages'
  | 'bytesSent'
  | 'bytesReceived'
  | 'deviceStateBytes'
  | 'deviceStateSentBytes'
  | 'pauseMs'
  | 'totalMs'
  | 'hashMs'
  | 'stepsMs'
  | 'precopiedPages'
> & { readonly at: number; readonly mode: string; readonly side: SyncReport['side'] }

/** Per sync this replica completes, as primary or backup (only with `reportSyncs`). */
export interface ReplicaSyncReport extends SyncReportFields {
  readonly type: 'sync-report'
  readonly id: number
}

export interface ReplicaEvent {
  readonly type: 'event'
  readonly id: number
  readonly name:
    | 'vm-ready'
    | 'promoted'
    | 'demoted'
    | 'protected'
    | 'unprotected'
    /** A planned stop handed leadership over; detail: the new leader's id. */
    | 'handed-over'
    | 'fatal'
  readonly at: number
  readonly detail?: string
}

export interface MembershipResult {
  readonly type: 'membership-result'
  readonly id: number
  readonly seq: number
  readonly ok: boolean
  readonly error?: string
}

export type ReplicaMessage = ReplicaStatus | ReplicaEvent | MembershipResult | ReplicaSyncReport

/** Orchestrator → leader: a membership change (like POST /admin/membership). */
export interface MembershipMessage {
  readonly type: 'membership'
  readonly seq: number
  readonly add?: number
  readonly remove?: number
  readonly role?: 'learner'
}

/** Fallback when no --config is given: the configuration as JSON in this environment variable. */
export const CONFIG_ENV = 'PLOVER_QR_CONFIG'
