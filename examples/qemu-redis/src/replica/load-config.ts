// The replica process's configuration: a JSON file (--config FILE) with the ReplicaProcessConfig
// schema, flags overriding single fields, and $PLOVER_QR_CONFIG (the same JSON) as a fallback
// when there is no --config. Every problem becomes a ConfigError naming the field (exit 78), so
// the operator sees one clear line. Host checks (image files, ports, privileges) are in
// preflight.ts. Modelled on examples/replicated-kv/src/config/replica-config.ts.
import { readFileSync } from 'node:fs'
import { isAbsolute } from 'node:path'
import { DEFAULT_COMPACT_AFTER_ENTRIES, MIN_ADMIN_TOKEN_LENGTH } from '@plover/vmsync'
import {
  CONFIG_ENV,
  type PeerEntry,
  type ReplicaProcessConfig,
  type SyncTuning,
  type VmSettings,
} from './config.js'
import { ConfigError } from './config-error.js'

export const DEFAULT_SYNC: SyncTuning = {
  maxIntervalMs: 1000,
  minIntervalMs: 50,
  maxHeldAgeMs: 40,
  periodMs: 20,
}
/** TCG guests and page hashing load small hosts: a 2 s election timeout (x1-2 randomised). */
export const DEFAULT_TICK_MS = 20
export const DEFAULT_ELECTION_TICKS = 100
/** A clean shutdown that takes longer is abandoned: exit 1 (QEMU dies with the process). */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000

export const USAGE = `usage: node --import tsx src/replica/main.ts --config FILE [--id N] [--data-dir DIR]
                                          [--metrics-port N] [--metrics-host HOST]

FILE (JSON):
  { "id": 1, "dataDir": "/var/lib/plover/1", "clusterKeyHex": "<32+ hex chars>",
    "replicas": [ { "id": 1, "role": "voter", "host": "10.0.0.1", "consensusPort": 7001, "syncPort": 7201 },
                  { "id": 2, "role": "voter", "host": "10.0.0.2", "consensusPort": 7001, "syncPort": 7201 },
                  { "id": 3, "role": "witness", "host": "10.0.0.3", "consensusPort": 7001 } ],
    "bootstrap": [ { "id": 1, "role": "voter" }, { "id": 2, "role": "voter" }, { "id": 3, "role": "witness" } ],
    "metrics": { "port": 7301, "adminToken": "<16+ characters>" (optional: POST /admin/membership),
                 "tls": { "certFile": "/etc/plover/tls.crt", "keyFile": "/etc/plover/tls.key" } (optional: HTTPS) },
    "vm": { "name": "redis1", "memoryMiB": 128, "ramPath": "/dev/shm/plover-redis1.ram", "tap": "plvtap0",
            "bridge": "plvbr0", "tapPrefix": "plv", "ip": "10.77.0.10/24",
            "kernel": "/path/bzImage", "initrd": "/path/initrd.cpio.gz",
            "hashFileReads": "auto" (optional; "mmap" | "pread"),
            "deviceState": "snapshot" (optional; "migration") } }
  optional: "tickMs" (${DEFAULT_TICK_MS}), "electionTicks" (${DEFAULT_ELECTION_TICKS}),
  "compactAfterEntries" (${DEFAULT_COMPACT_AFTER_ENTRIES}: log records before a sync cut that trigger a compaction), "sync": { "maxIntervalMs", "minIntervalMs",
  "maxHeldAgeMs", "periodMs", "outputSettledSamples", "quietWindowMs", "quietMaxMs", "fixedIntervalMs" }, "syncMode" ("vsmr" | "remus"), "precopy", "reuseScanDigests", "reportSyncs",
  "shutdownTimeoutMs" (\${DEFAULT_SHUTDOWN_TIMEOUT_MS}: after SIGTERM, exit 1 if the clean shutdown takes longer).
  A voter needs "vm" (and root or CAP_NET_ADMIN); a witness has none.
Without --config the same JSON is read from $${CONFIG_ENV}.
Exit codes: 0 clean shutdown, 1 failure, 69 missing program, 77 no permission, 78 bad configuration.
See examples/qemu-redis/README.md.`

type Json = Record<string, unknown>

/** `v` when it is one of `allowed` (undefined when absent); else the message names them all. */
function optionalChoice<T extends string>(v: unknown, field: string, allowed: readonly T[]): T | undefined {
  if (v === undefined || allowed.includes(v as T)) return v as T | undefined
  const names = allowed.map((a) => `"${a}"`)
  const list = `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`
  throw new ConfigError(`${field} must be ${list}, got ${JSON.stringify(v)}`)
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function known(v: Json, field: string, keys: readonly string[]): void {
  for (const k of Object.keys(v))
    if (!keys.includes(k)) throw new ConfigError(`unknown setting "${field ? `${field}.` : ''}${k}"`)
}

function port(v: unknown, field: string): number {
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 65535)
    throw new ConfigError(`${field} must be a TCP port (1-65535), got ${JSON.stringify(v)}`)
  return v as number
}

function positiveInt(v: unknown, field: string): number {
  if (!Number.isInteger(v) || (v as number) < 1)
    throw new ConfigError(`${field} must be a positive integer, got ${JSON.stringify(v)}`)
  return v as number
}

function str(v: unknown, field: string): string {
  if (typeof v !== 'string' || v.length === 0) throw new ConfigError(`${field} must be a non-empty string`)
  return v
}

/** A network interface name (IFNAMSIZ: at most 15 bytes). */
function ifname(v: unknown, field: string): string {
  const s = str(v, field)
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(s))
    throw new ConfigError(`${field} must be an interface name (1-15 of A-Z a-z 0-9 _ . -), got "${s}"`)
  return s
}

function parseKey(v: unknown): string {
  const s = str(v, 'clusterKeyHex')
  if (!/^[0-9a-fA-F]+$/.test(s) || s.length % 2 !== 0) throw new ConfigError('clusterKeyHex must be hex')
  if (s.length < 32) throw new ConfigError('clusterKeyHex must be at least 16 bytes (32 hex characters)')
  return s
}

function parsePeer(v: unknown, i: number): PeerEntry {
  const f = `replicas[${i}]`
  if (!isObject(v)) throw new ConfigError(`${f} must be an object`)
  known(v, f, ['id', 'role', 'host', 'consensusPort', 'syncPort'])
  const role = v.role
  if (role !== 'voter' && role !== 'witness') throw new ConfigError(`${f}.role must be "voter" or "witness"`)
  if (role === 'witness' && v.syncPort !== undefined)
    throw new ConfigError(`${f}.syncPort: a witness runs no VM and has no sync port`)
  return {
    id: positiveInt(v.id, `${f}.id`),
    role,
    host: str(v.host, `${f}.host`),
    consensusPort: port(v.consensusPort, `${f}.consensusPort`),
    ...(role === 'voter' ? { syncPort: port(v.syncPort, `${f}.syncPort`) } : {}),
  }
}

function parseSync(v: unknown): SyncTuning {
  if (v === undefined) return DEFAULT_SYNC
  if (!isObject(v)) throw new ConfigError('sync must be an object')
  known(v, 'sync', [
    ...Object.keys(DEFAULT_SYNC),
    'outputSettledSamples',
    'quietWindowMs',
    'quietMaxMs',
    'fixedIntervalMs',
  ])
  const out: Record<string, number> = { ...DEFAULT_SYNC }
  for (const [k, val] of Object.entries(v)) out[k] = positiveInt(val, `sync.${k}`)
  if (out.minIntervalMs > out.maxIntervalMs)
    throw new ConfigError('sync.minIntervalMs exceeds sync.maxIntervalMs')
  return out as unknown as SyncTuning
}

function parseVm(v: unknown, id: number): VmSettings {
  if (!isObject(v)) throw new ConfigError('vm must be an object')
  const keys = [
    'name',
    'memoryMiB',
    'ramPath',
    'tap',
    'bridge',
    'tapPrefix',
    'ip',
    'kernel',
    'initrd',
    'hashFileReads',
    'deviceState',
  ]
  known(v, 'vm', keys)
  const name = str(v.name, 'vm.name')
  if (!/^[A-Za-z0-9_.-]+$/.test(name))
    throw new ConfigError(`vm.name must be of A-Z a-z 0-9 _ . -, got "${name}"`)
  const ramPath = str(v.ramPath, 'vm.ramPath')
  if (!isAbsolute(ramPath)) throw new ConfigError(`vm.ramPath must be an absolute path, got "${ramPath}"`)
  const tapPrefix = str(v.tapPrefix, 'vm.tapPrefix')
  // Standby taps are named `${tapPrefix}r${id}${seq in base 36}`: leave room for 3 digits of seq.
  if (!/^[A-Za-z0-9_.-]+$/.test(tapPrefix) || `${tapPrefix}r${id}zzz`.length > 15)
    throw new ConfigError(
      `vm.tapPrefix "${tapPrefix}" is too long or not an interface-name prefix (${15 - 4 - String(id).length} characters at most)`,
    )
  const ip = str(v.ip, 'vm.ip')
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(ip)
  if (!m || m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) > 32)
    throw new ConfigError(`vm.ip must be an IPv4 address with prefix length (10.77.0.10/24), got "${ip}"`)
  const reads = optionalChoice(v.hashFileReads, 'vm.hashFileReads', ['auto', 'mmap', 'pread'] as const)
  const deviceState = optionalChoice(v.deviceState, 'vm.deviceState', ['snapshot', 'migration'] as const)
  return {
    name,
    memoryMiB: positiveInt(v.memoryMiB, 'vm.memoryMiB'),
    ramPath,
    tap: ifname(v.tap, 'vm.tap'),
    bridge: ifname(v.bridge, 'vm.bridge'),
    tapPrefix,
    ip,
    kernel: str(v.kernel, 'vm.kernel'),
    initrd: str(v.initrd, 'vm.initrd'),
    ...(reads ? { hashFileReads: reads } : {}),
    ...(deviceState ? { deviceState } : {}),
  }
}

const WILDCARD = new Set(['0.0.0.0', '::', ''])

/** Two listeners on one host:port (any of them a wildcard address counts as every address). */
function checkDuplicatePorts(cfg: ReplicaProcessConfig): void {
  const seen: Array<{ host: string; port: number; field: string }> = []
  const add = (host: string, p: number, field: string) => {
    for (const s of seen) {
      if (s.port === p && (s.host === host || WILDCARD.has(s.host) || WILDCARD.has(host)))
        throw new ConfigError(`duplicate port: ${field} and ${s.field} are both ${host}:${p}`)
    }
    seen.push({ host, port: p, field })
  }
  cfg.replicas.forEach((r, i) => {
    add(r.host, r.consensusPort, `replicas[${i}].consensusPort`)
    if (r.syncPort !== undefined) add(r.host, r.syncPort, `replicas[${i}].syncPort`)
  })
  if (cfg.metrics) add(cfg.metrics.host, cfg.metrics.port, 'metrics.port')
}

/** Validates a parsed JSON document (with flag overrides already merged in) and fills defaults. */
export function parseReplicaProcessConfig(doc: unknown): ReplicaProcessConfig {
  if (!isObject(doc)) throw new ConfigError('the configuration must be a JSON object')
  known(doc, '', [
    'id',
    'dataDir',
    'clusterKeyHex',
    'replicas',
    'bootstrap',
    'tickMs',
    'electionTicks',
    'compactAfterEntries',
    'vm',
    'sync',
    'syncMode',
    'precopy',
    'reuseScanDigests',
    'reportSyncs',
    'metrics',
    'shutdownTimeoutMs',
  ])
  const id = positiveInt(doc.id, 'id')
  if (!Array.isArray(doc.replicas) || doc.replicas.length === 0)
    throw new ConfigError('replicas must be a non-empty array (the address book)')
  const replicas = doc.replicas.map(parsePeer)
  const byId = new Map<number, PeerEntry>()
  for (const r of replicas) {
    if (byId.has(r.id)) throw new ConfigError(`replica ${r.id} is listed twice in replicas`)
    byId.set(r.id, r)
  }
  const me = byId.get(id)
  if (!me) throw new ConfigError(`unknown peer: this replica's id ${id} is not in replicas`)
  if (!Array.isArray(doc.bootstrap) || doc.bootstrap.length === 0)
    throw new ConfigError('bootstrap must be a non-empty array of { id, role }')
  const inBootstrap = new Set<number>()
  const bootstrap = doc.bootstrap.map((b: unknown, i: number): ReplicaProcessConfig['bootstrap'][number] => {
    if (!isObject(b)) throw new ConfigError(`bootstrap[${i}] must be an object`)
    known(b, `bootstrap[${i}]`, ['id', 'role'])
    const bid = positiveInt(b.id, `bootstrap[${i}].id`)
    const addr = byId.get(bid)
    if (!addr) throw new ConfigError(`unknown peer: bootstrap member ${bid} is not in replicas`)
    if (inBootstrap.has(bid)) throw new ConfigError(`bootstrap member ${bid} is listed twice`)
    inBootstrap.add(bid)
    const role = b.role
    if (role !== 'voter' && role !== 'witness' && role !== 'learner')
      throw new ConfigError(`bootstrap[${i}].role must be "voter", "witness" or "learner"`)
    if ((role === 'witness') !== (addr.role === 'witness'))
      throw new ConfigError(
        `bootstrap member ${bid} is a ${role} but replicas lists it as a ${addr.role} (witness ⇔ witness)`,
      )
    return { id: bid, role }
  })
  if (!bootstrap.some((b) => b.role === 'voter')) throw new ConfigError('bootstrap needs at least one voter')
  if (me.role === 'voter' && doc.vm === undefined)
    throw new ConfigError(`replica ${id} is a voter and needs "vm" (its QEMU guest)`)
  if (me.role === 'witness' && doc.vm !== undefined)
    throw new ConfigError(`replica ${id} is a witness: it runs no VM, remove "vm"`)
  const syncMode = optionalChoice(doc.syncMode, 'syncMode', ['vsmr', 'remus'] as const)
  if (doc.precopy !== undefined && typeof doc.precopy !== 'boolean')
    throw new ConfigError('precopy must be true or false')
  if (doc.reuseScanDigests !== undefined && typeof doc.reuseScanDigests !== 'boolean')
    throw new ConfigError('reuseScanDigests must be true or false')
  if (doc.reportSyncs !== undefined && typeof doc.reportSyncs !== 'boolean')
    throw new ConfigError('reportSyncs must be true or false')
  let metrics: ReplicaProcessConfig['metrics']
  if (doc.metrics !== undefined) {
    if (!isObject(doc.metrics))
      throw new ConfigError('metrics must be an object: { "host"?, "port", "adminToken"?, "tls"? }')
    known(doc.metrics, 'metrics', ['host', 'port', 'adminToken', 'tls'])
    const token = doc.metrics.adminToken
    if (token !== undefined && str(token, 'metrics.adminToken').length < MIN_ADMIN_TOKEN_LENGTH)
      throw new ConfigError(`metrics.adminToken must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters`)
    const tls = doc.metrics.tls
    if (tls !== undefined) {
      if (!isObject(tls)) throw new ConfigError('metrics.tls must be an object: { "certFile", "keyFile" }')
      known(tls, 'metrics.tls', ['certFile', 'keyFile'])
    }
    metrics = {
      host: doc.metrics.host === undefined ? me.host : str(doc.metrics.host, 'metrics.host'),
      port: port(doc.metrics.port, 'metrics.port'),
      ...(token === undefined ? {} : { adminToken: token as string }),
      ...(isObject(tls)
        ? {
            tls: {
              certFile: str(tls.certFile, 'metrics.tls.certFile'),
              keyFile: str(tls.keyFile, 'metrics.tls.keyFile'),
            },
          }
        : {}),
    }
  }
  const cfg: ReplicaProcessConfig = {
    id,
    dataDir: str(doc.dataDir, 'dataDir'),
    clusterKeyHex: parseKey(doc.clusterKeyHex),
    replicas,
    bootstrap,
    tickMs: doc.tickMs === undefined ? DEFAULT_TICK_MS : positiveInt(doc.tickMs, 'tickMs'),
    shutdownTimeoutMs:
      doc.shutdownTimeoutMs === undefined
        ? DEFAULT_SHUTDOWN_TIMEOUT_MS
        : positiveInt(doc.shutdownTimeoutMs, 'shutdownTimeoutMs'),
    electionTicks:
      doc.electionTicks === undefined
        ? DEFAULT_ELECTION_TICKS
        : positiveInt(doc.electionTicks, 'electionTicks'),
    compactAfterEntries:
      doc.compactAfterEntries === undefined
        ? DEFAULT_COMPACT_AFTER_ENTRIES
        : positiveInt(doc.compactAfterEntries, 'compactAfterEntries'),
    sync: parseSync(doc.sync),
    ...(doc.vm !== undefined ? { vm: parseVm(doc.vm, id) } : {}),
    ...(syncMode ? { syncMode } : {}),
    ...(doc.precopy === false ? { precopy: false } : {}),
    ...(doc.reuseScanDigests === false ? { reuseScanDigests: false } : {}),
    ...(doc.reportSyncs ? { reportSyncs: true } : {}),
    ...(metrics ? { metrics } : {}),
  }
  checkDuplicatePorts(cfg)
  return cfg
}

const FLAGS = ['config', 'id', 'data-dir', 'metrics-port', 'metrics-host'] as const
type Flag = (typeof FLAGS)[number]

/** True if argv asks for the usage text. */
export function wantsHelp(argv: readonly string[]): boolean {
  return argv.includes('--help') || argv.includes('-h')
}

function parseFlags(argv: readonly string[]): Map<Flag, string> {
  const flags = new Map<Flag, string>()
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a)
    if (!m || !(FLAGS as readonly string[]).includes(m[1]))
      throw new ConfigError(`unknown argument "${a}" (see --help)`)
    const value = m[2] ?? argv[++i]
    if (value === undefined || value === '') throw new ConfigError(`--${m[1]} needs a value`)
    flags.set(m[1] as Flag, value)
  }
  return flags
}

const asNumber = (s: string): number | string => (/^\d+$/.test(s) ? Number(s) : s)

/**
 * argv (without node and the script): --config FILE plus overrides; without --config, the JSON
 * in env[CONFIG_ENV].
 */
export function loadReplicaProcessConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): ReplicaProcessConfig {
  const flags = parseFlags(argv)
  const file = flags.get('config')
  let text: string
  let source: string
  if (file) {
    source = `config file ${file}`
    try {
      text = readFileSync(file, 'utf8')
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`)
    }
  } else if (env[CONFIG_ENV]) {
    source = `$${CONFIG_ENV}`
    text = env[CONFIG_ENV]
  } else throw new ConfigError(`missing --config FILE (see --help)`)
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`${source} is not valid JSON: ${(err as Error).message}`)
  }
  if (isObject(doc)) {
    const id = flags.get('id')
    if (id !== undefined) doc.id = asNumber(id)
    const dir = flags.get('data-dir')
    if (dir !== undefined) doc.dataDir = dir
    const mPort = flags.get('metrics-port')
    const mHost = flags.get('metrics-host')
    if (mPort !== undefined || mHost !== undefined) {
      const m: Json = isObject(doc.metrics) ? { ...doc.metrics } : {}
      if (mPort !== undefined) m.port = asNumber(mPort)
      if (mHost !== undefined) m.host = mHost
      doc.metrics = m
    }
  }
  return parseReplicaProcessConfig(doc)
}

export function self(cfg: ReplicaProcessConfig): PeerEntry {
  return cfg.replicas.find((r) => r.id === cfg.id)!
}
