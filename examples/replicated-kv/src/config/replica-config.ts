// One replica process's configuration: the cluster table (every replica's id, role and
// addresses — the same in every file) plus this replica's own id, data directory and key.
// Read from a JSON file (--config) with flags overriding single fields. Every problem becomes a
// ConfigError naming the field, so the operator sees one clear line.
import { readFileSync } from 'node:fs'
import { DEFAULT_COMPACT_AFTER_ENTRIES, MIN_ADMIN_TOKEN_LENGTH } from '@plover/vmsync'
import { ConfigError } from './config-error.js'

export type MemberKind = 'voter' | 'witness' | 'learner'

export interface ReplicaAddress {
  readonly id: number
  /** voter: runs a VM and may lead; witness: votes only. */
  readonly role: 'voter' | 'witness'
  readonly host: string
  readonly consensusPort: number
  /** VM replicas only: clients connect here. */
  readonly clientPort?: number
  /** VM replicas only: the sync link (pages + device state) between primary and backup. */
  readonly syncPort?: number
  /** HTTP: /metrics, /status, POST /admin/membership. */
  readonly metricsPort: number
}

export interface SyncTuning {
  /** A sync is forced at least this often, idle or not (ms). */
  readonly maxIntervalMs: number
  readonly minIntervalMs: number
  /** Held output older than this forces a sync (ms). */
  readonly maxHeldAgeMs: number
  /** Idle-monitor sampling period (ms). */
  readonly periodMs: number
}

export interface ReplicaConfig {
  readonly id: number
  readonly dataDir: string
  /** Pre-shared key for the consensus transport and the sync link (>= 16 bytes). */
  readonly clusterKey: Uint8Array
  /** Every replica that is or may become a member (address book). */
  readonly replicas: readonly ReplicaAddress[]
  /**
   * Membership at first start (ignored once the log records a change). A replica that joins a
   * running cluster lists the current members plus itself as 'learner'.
   */
  readonly bootstrap: ReadonlyArray<{ readonly id: number; readonly role: MemberKind }>
  /** Simulated VM size in 4 KiB pages. */
  readonly vmPages: number
  readonly sync: SyncTuning
  /** Consensus tick (ms) and election timeout in ticks. */
  readonly tickMs: number
  readonly electionTicks: number
  /**
   * Compact the consensus log at a sync cut once this many records lie before it (see
   * LogCompaction): bounds the WAL on disk, the log in memory and a restart's replay.
   */
  readonly compactAfterEntries: number
  /** A SIGTERM shutdown that takes longer is abandoned with exit code 1 (ms). */
  readonly shutdownTimeoutMs: number
  /** Bearer token for POST /admin/membership (>= 16 characters); unset: that route is off. */
  readonly adminToken?: string
  /** Serve the metrics port over HTTPS with this certificate and key (PEM files). */
  readonly metricsTls?: { readonly certFile: string; readonly keyFile: string }
}

export const DEFAULT_SYNC: SyncTuning = {
  maxIntervalMs: 500,
  minIntervalMs: 5,
  maxHeldAgeMs: 20,
  periodMs: 5,
}

export const USAGE = `usage: replica --config <file.json> [--id N] [--data-dir DIR]

The JSON file:
  { "id": 1, "dataDir": "/var/lib/plover/1", "clusterKey": "<32+ hex chars>",
    "replicas": [ { "id": 1, "role": "voter", "host": "10.0.0.1", "consensusPort": 7001,
                    "clientPort": 7101, "syncPort": 7201, "metricsPort": 7301 }, ... ],
    "bootstrap": [ { "id": 1, "role": "voter" }, { "id": 2, "role": "voter" }, { "id": 3, "role": "witness" } ],
    "vmPages": 16384, "sync": { "maxIntervalMs": 500 }, "compactAfterEntries": 8192,
    "shutdownTimeoutMs": 10000, "adminToken": "<16+ characters>",
    "metricsTls": { "certFile": "/etc/plover/tls.crt", "keyFile": "/etc/plover/tls.key" } }
See docs/operations.md.`

type Json = Record<string, unknown>

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function port(v: unknown, field: string): number {
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 65535) {
    throw new ConfigError(`${field} must be a TCP port (1-65535), got ${JSON.stringify(v)}`)
  }
  return v as number
}

function positiveInt(v: unknown, field: string): number {
  if (!Number.isInteger(v) || (v as number) < 1) {
    throw new ConfigError(`${field} must be a positive integer, got ${JSON.stringify(v)}`)
  }
  return v as number
}

function str(v: unknown, field: string): string {
  if (typeof v !== 'string' || v.length === 0) throw new ConfigError(`${field} must be a non-empty string`)
  return v
}

function parseKey(v: unknown): Uint8Array {
  const s = str(v, 'clusterKey')
  if (!/^[0-9a-fA-F]+$/.test(s) || s.length % 2 !== 0) throw new ConfigError('clusterKey must be hex')
  if (s.length < 32) throw new ConfigError('clusterKey must be at least 16 bytes (32 hex characters)')
  return Buffer.from(s, 'hex')
}

function parseAdminToken(v: unknown): string {
  const s = str(v, 'adminToken')
  if (s.length < MIN_ADMIN_TOKEN_LENGTH)
    throw new ConfigError(`adminToken must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters`)
  return s
}

function parseTlsFiles(v: unknown, field: string): { certFile: string; keyFile: string } {
  if (!isObject(v)) throw new ConfigError(`${field} must be an object: { "certFile", "keyFile" }`)
  for (const k of Object.keys(v))
    if (k !== 'certFile' && k !== 'keyFile') throw new ConfigError(`${field}.${k} is not a known setting`)
  return { certFile: str(v.certFile, `${field}.certFile`), keyFile: str(v.keyFile, `${field}.keyFile`) }
}

function parseReplica(v: unknown, i: number): ReplicaAddress {
  const f = `replicas[${i}]`
  if (!isObject(v)) throw new ConfigError(`${f} must be an object`)
  const role = v.role
  if (role !== 'voter' && role !== 'witness') throw new ConfigError(`${f}.role must be "voter" or "witness"`)
  const r: ReplicaAddress = {
    id: positiveInt(v.id, `${f}.id`),
    role,
    host: str(v.host, `${f}.host`),
    consensusPort: port(v.consensusPort, `${f}.consensusPort`),
    metricsPort: port(v.metricsPort, `${f}.metricsPort`),
    clientPort: role === 'voter' ? port(v.clientPort, `${f}.clientPort`) : undefined,
    syncPort: role === 'voter' ? port(v.syncPort, `${f}.syncPort`) : undefined,
  }
  return r
}

function parseSync(v: unknown): SyncTuning {
  if (v === undefined) return DEFAULT_SYNC
  if (!isObject(v)) throw new ConfigError('sync must be an object')
  const out: Record<string, number> = { ...DEFAULT_SYNC }
  for (const [k, val] of Object.entries(v)) {
    if (!(k in DEFAULT_SYNC)) throw new ConfigError(`sync.${k} is not a known setting`)
    out[k] = positiveInt(val, `sync.${k}`)
  }
  if (out.minIntervalMs > out.maxIntervalMs)
    throw new ConfigError('sync.minIntervalMs exceeds sync.maxIntervalMs')
  return out as unknown as SyncTuning
}

/** Validates a parsed JSON document (with flag overrides already merged in). */
export function parseReplicaConfig(doc: unknown): ReplicaConfig {
  if (!isObject(doc)) throw new ConfigError('the configuration must be a JSON object')
  const known = new Set([
    'id',
    'dataDir',
    'clusterKey',
    'replicas',
    'bootstrap',
    'vmPages',
    'sync',
    'tickMs',
    'electionTicks',
    'compactAfterEntries',
    'shutdownTimeoutMs',
    'adminToken',
    'metricsTls',
  ])
  for (const k of Object.keys(doc)) if (!known.has(k)) throw new ConfigError(`unknown setting "${k}"`)
  const id = positiveInt(doc.id, 'id')
  if (!Array.isArray(doc.replicas) || doc.replicas.length === 0) {
    throw new ConfigError('replicas must be a non-empty array')
  }
  const replicas = doc.replicas.map(parseReplica)
  const ids = new Set<number>()
  for (const r of replicas) {
    if (ids.has(r.id)) throw new ConfigError(`replica ${r.id} is listed twice in replicas`)
    ids.add(r.id)
  }
  if (!ids.has(id)) throw new ConfigError(`unknown peer: this replica's id ${id} is not in replicas`)
  if (!Array.isArray(doc.bootstrap) || doc.bootstrap.length === 0) {
    throw new ConfigError('bootstrap must be a non-empty array of { id, role }')
  }
  const bootstrap = doc.bootstrap.map((b: unknown, i: number) => {
    if (!isObject(b)) throw new ConfigError(`bootstrap[${i}] must be an object`)
    const bid = positiveInt(b.id, `bootstrap[${i}].id`)
    if (!ids.has(bid)) throw new ConfigError(`unknown peer: bootstrap member ${bid} is not in replicas`)
    const role = b.role
    if (role !== 'voter' && role !== 'witness' && role !== 'learner') {
      throw new ConfigError(`bootstrap[${i}].role must be "voter", "witness" or "learner"`)
    }
    const addr = replicas.find((r) => r.id === bid)!
    if (role === 'witness' && addr.role !== 'witness') {
      throw new ConfigError(`bootstrap member ${bid} is a witness but replicas lists it as a voter`)
    }
    if (role !== 'witness' && addr.role === 'witness') {
      throw new ConfigError(`bootstrap member ${bid} is listed as a witness in replicas`)
    }
    return { id: bid, role: role as MemberKind }
  })
  if (!bootstrap.some((b) => b.role === 'voter')) throw new ConfigError('bootstrap needs at least one voter')
  return {
    id,
    dataDir: str(doc.dataDir, 'dataDir'),
    clusterKey: parseKey(doc.clusterKey),
    replicas,
    bootstrap,
    vmPages: doc.vmPages === undefined ? 16384 : positiveInt(doc.vmPages, 'vmPages'),
    sync: parseSync(doc.sync),
    tickMs: doc.tickMs === undefined ? 10 : positiveInt(doc.tickMs, 'tickMs'),
    electionTicks: doc.electionTicks === undefined ? 30 : positiveInt(doc.electionTicks, 'electionTicks'),
    compactAfterEntries:
      doc.compactAfterEntries === undefined
        ? DEFAULT_COMPACT_AFTER_ENTRIES
        : positiveInt(doc.compactAfterEntries, 'compactAfterEntries'),
    shutdownTimeoutMs:
      doc.shutdownTimeoutMs === undefined ? 10_000 : positiveInt(doc.shutdownTimeoutMs, 'shutdownTimeoutMs'),
    ...(doc.adminToken === undefined ? {} : { adminToken: parseAdminToken(doc.adminToken) }),
    ...(doc.metricsTls === undefined ? {} : { metricsTls: parseTlsFiles(doc.metricsTls, 'metricsTls') }),
  }
}

/** Parses argv (without node and script): --config FILE plus overrides. */
export function loadReplicaConfig(argv: readonly string[]): ReplicaConfig {
  const flags = new Map<string, string>()
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--help' || a === '-h') throw new ConfigError(USAGE)
    const m = /^--(config|id|data-dir)(?:=(.*))?$/.exec(a)
    if (!m) throw new ConfigError(`unknown argument "${a}"\n${USAGE}`)
    const value = m[2] ?? argv[++i]
    if (value === undefined) throw new ConfigError(`--${m[1]} needs a value`)
    flags.set(m[1], value)
  }
  const file = flags.get('config')
  if (!file) throw new ConfigError(`missing --config\n${USAGE}`)
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`)
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid JSON: ${(err as Error).message}`)
  }
  if (isObject(doc)) {
    const id = flags.get('id')
    if (id !== undefined) doc.id = /^\d+$/.test(id) ? Number(id) : id
    const dir = flags.get('data-dir')
    if (dir !== undefined) doc.dataDir = dir
  }
  return parseReplicaConfig(doc)
}

export function self(c: ReplicaConfig): ReplicaAddress {
  return c.replicas.find((r) => r.id === c.id)!
}
