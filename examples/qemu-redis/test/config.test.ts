// The replica's configuration (file, flags, env fallback) and its host checks: every problem is a
// ConfigError whose message names it, with the documented exit code.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { CONFIG_ENV } from '../src/replica/config.js'
import { ConfigError, EXIT } from '../src/replica/config-error.js'
import {
  DEFAULT_SYNC,
  loadReplicaProcessConfig,
  parseReplicaProcessConfig,
  wantsHelp,
} from '../src/replica/load-config.js'
import { checkHost, checkPorts } from '../src/replica/preflight.js'

const dir = mkdtempSync(join(tmpdir(), 'plover-qr-config-test-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

const replicas = [
  { id: 1, role: 'voter', host: '127.0.0.1', consensusPort: 7001, syncPort: 7101 },
  { id: 2, role: 'voter', host: '127.0.0.1', consensusPort: 7002, syncPort: 7102 },
  { id: 3, role: 'witness', host: '127.0.0.1', consensusPort: 7003 },
]
const bootstrap = [
  { id: 1, role: 'voter' },
  { id: 2, role: 'voter' },
  { id: 3, role: 'witness' },
]
const vm = {
  name: 'qr1',
  memoryMiB: 128,
  ramPath: '/dev/shm/plover-qr1.ram',
  tap: 'plvtap0',
  bridge: 'plvbr0',
  tapPrefix: 'plv1',
  ip: '10.77.0.10/24',
  kernel: join(dir, 'bzImage'),
  initrd: join(dir, 'initrd'),
}
const voter = { id: 1, dataDir: '/tmp/x', clusterKeyHex: 'ab'.repeat(16), replicas, bootstrap, vm }
const witness = { ...voter, id: 3, vm: undefined }

t.test('a valid voter file parses with defaults', async (t) => {
  const c = parseReplicaProcessConfig(voter)
  t.equal(c.id, 1)
  t.same(c.sync, DEFAULT_SYNC)
  t.equal(c.tickMs, 20)
  t.equal(c.electionTicks, 100)
  t.equal(c.shutdownTimeoutMs, 10_000)
  t.equal(c.compactAfterEntries, 8192)
  t.equal(c.metrics, undefined, 'no HTTP endpoint unless asked for')
  t.equal(c.vm?.tap, 'plvtap0')
  t.equal(c.vm?.hashFileReads, undefined, "hash workers' default ('auto')")
  t.equal(c.precopy, undefined, 'pre-copy on (vmsync default)')
  const tuned = parseReplicaProcessConfig({
    ...voter,
    precopy: false,
    reuseScanDigests: false,
    shutdownTimeoutMs: 3000,
    compactAfterEntries: 64,
    vm: { ...vm, hashFileReads: 'pread' },
    sync: { outputSettledSamples: 2, quietWindowMs: 20, quietMaxMs: 100 },
  })
  t.equal(tuned.precopy, false)
  t.equal(tuned.reuseScanDigests, false)
  t.same(
    tuned.sync,
    { ...DEFAULT_SYNC, outputSettledSamples: 2, quietWindowMs: 20, quietMaxMs: 100 },
    'optional sync settings on top of the defaults',
  )
  t.equal(tuned.shutdownTimeoutMs, 3000)
  t.equal(tuned.compactAfterEntries, 64)
  t.equal(tuned.vm?.hashFileReads, 'pread')
})

t.test('a witness with a metrics port; its host defaults to the replica host', async (t) => {
  const c = parseReplicaProcessConfig({ ...witness, metrics: { port: 7303 } })
  t.same(c.metrics, { host: '127.0.0.1', port: 7303 })
  t.equal(c.vm, undefined)
  const admin = parseReplicaProcessConfig({ ...witness, metrics: { port: 7303, adminToken: 'y'.repeat(20) } })
  t.equal(admin.metrics?.adminToken, 'y'.repeat(20), 'with a token for the admin route')
  const tls = parseReplicaProcessConfig({
    ...witness,
    metrics: { port: 7303, tls: { certFile: '/c.pem', keyFile: '/k.pem' } },
  })
  t.same(tls.metrics?.tls, { certFile: '/c.pem', keyFile: '/k.pem' }, 'and HTTPS')
})

const bad: [string, unknown, RegExp][] = [
  [
    'shutdownTimeoutMs not positive',
    { ...voter, shutdownTimeoutMs: 0 },
    /shutdownTimeoutMs must be a positive integer/,
  ],
  [
    'compaction threshold not a number',
    { ...voter, compactAfterEntries: 'often' },
    /compactAfterEntries must be a positive integer, got "often"/,
  ],
  [
    'unknown deviceState',
    { ...voter, vm: { ...vm, deviceState: 'stream' } },
    /vm\.deviceState must be "snapshot" or "migration", got "stream"/,
  ],
  [
    'unknown hashFileReads',
    { ...voter, vm: { ...vm, hashFileReads: 'mapped' } },
    /vm\.hashFileReads must be "auto", "mmap" or "pread", got "mapped"/,
  ],
  ['own id not in replicas', { ...voter, id: 9 }, /unknown peer: this replica's id 9/],
  [
    'bootstrap names an unknown peer',
    { ...voter, bootstrap: [...bootstrap, { id: 7, role: 'voter' }] },
    /unknown peer: bootstrap member 7/,
  ],
  ['bootstrap lists a member twice', { ...voter, bootstrap: [...bootstrap, bootstrap[0]] }, /listed twice/],
  ['duplicate id', { ...voter, replicas: [...replicas, replicas[0]] }, /replica 1 is listed twice/],
  [
    'duplicate port in the address book',
    { ...voter, replicas: [replicas[0], { ...replicas[1], syncPort: 7001 }, replicas[2]] },
    /duplicate port: replicas\[1\]\.syncPort and replicas\[0\]\.consensusPort are both 127\.0\.0\.1:7001/,
  ],
  [
    'metrics port equal to a consensus port',
    { ...voter, metrics: { port: 7002 } },
    /duplicate port: metrics\.port and replicas\[1\]\.consensusPort/,
  ],
  [
    'a wildcard metrics address collides too',
    { ...voter, metrics: { host: '0.0.0.0', port: 7003 } },
    /duplicate port: metrics\.port/,
  ],
  ['short key', { ...voter, clusterKeyHex: 'abcd' }, /at least 16 bytes/],
  [
    'TLS without a key file',
    { ...voter, metrics: { port: 7301, tls: { certFile: '/c.pem' } } },
    /metrics\.tls\.keyFile must be a non-empty string/,
  ],
  [
    'short admin token',
    { ...voter, metrics: { port: 7301, adminToken: 'letmein' } },
    /metrics\.adminToken must be at least 16 characters/,
  ],
  ['key not hex', { ...voter, clusterKeyHex: 'zz'.repeat(16) }, /clusterKeyHex must be hex/],
  [
    'bad port',
    { ...voter, replicas: [{ ...replicas[0], consensusPort: 70000 }, ...replicas.slice(1)] },
    /replicas\[0\]\.consensusPort must be a TCP port/,
  ],
  [
    'voter without sync port',
    { ...voter, replicas: [{ ...replicas[0], syncPort: undefined }, ...replicas.slice(1)] },
    /replicas\[0\]\.syncPort/,
  ],
  [
    'witness with a sync port',
    { ...voter, replicas: [...replicas.slice(0, 2), { ...replicas[2], syncPort: 7103 }] },
    /a witness runs no VM/,
  ],
  ['voter without vm', { ...voter, vm: undefined }, /voter and needs "vm"/],
  ['witness with vm', { ...witness, vm }, /witness: it runs no VM/],
  ['unknown setting', { ...voter, colour: 'blue' }, /unknown setting "colour"/],
  ['unknown vm setting', { ...voter, vm: { ...vm, cpus: 2 } }, /unknown setting "vm\.cpus"/],
  ['unknown sync setting', { ...voter, sync: { everyMs: 5 } }, /unknown setting "sync\.everyMs"/],
  ['witness role mismatch', { ...voter, bootstrap: [{ id: 1, role: 'witness' }] }, /witness/],
  ['no voter in bootstrap', { ...voter, bootstrap: [{ id: 3, role: 'witness' }] }, /at least one voter/],
  ['bad guest ip', { ...voter, vm: { ...vm, ip: '10.77.0.300/24' } }, /vm\.ip/],
  ['relative RAM path', { ...voter, vm: { ...vm, ramPath: 'ram' } }, /vm\.ramPath must be an absolute path/],
  [
    'tap name too long',
    { ...voter, vm: { ...vm, tap: 'a-very-long-tap-name' } },
    /vm\.tap must be an interface name/,
  ],
  ['tap prefix too long', { ...voter, vm: { ...vm, tapPrefix: 'plvabcdefghij' } }, /vm\.tapPrefix/],
  ['bad sync mode', { ...voter, syncMode: 'colo' }, /syncMode/],
  ['precopy not a boolean', { ...voter, precopy: 'yes' }, /precopy must be true or false/],
  [
    'reuseScanDigests not a boolean',
    { ...voter, reuseScanDigests: 1 },
    /reuseScanDigests must be true or false/,
  ],
  ['sync intervals reversed', { ...voter, sync: { minIntervalMs: 2000 } }, /minIntervalMs exceeds/],
  [
    'output settled not a count',
    { ...voter, sync: { outputSettledSamples: 0.5 } },
    /sync\.outputSettledSamples/,
  ],
  ['not an object', [1, 2], /JSON object/],
]
for (const [name, doc, msg] of bad) {
  t.test(name, async (t) => {
    const err = t.throws(() => parseReplicaProcessConfig(doc), msg) as ConfigError
    t.type(err, ConfigError)
    t.equal(err.exitCode, EXIT.config, 'exit code 78')
  })
}

t.test('flags override the file', async (t) => {
  const file = join(dir, 'flags.json')
  writeFileSync(file, JSON.stringify(voter))
  const c = loadReplicaProcessConfig(
    ['--config', file, '--id', '2', '--data-dir=/data/2', '--metrics-port', '9100'],
    {},
  )
  t.equal(c.id, 2)
  t.equal(c.dataDir, '/data/2')
  t.same(c.metrics, { host: '127.0.0.1', port: 9100 })
  t.throws(() => loadReplicaProcessConfig(['--config', file, '--id', '3'], {}), /witness: it runs no VM/)
  const h = loadReplicaProcessConfig(
    ['--config', file, '--metrics-host', '0.0.0.0', '--metrics-port', '9100'],
    {},
  )
  t.same(h.metrics, { host: '0.0.0.0', port: 9100 })
})

t.test('the environment variable is the fallback; --config wins', async (t) => {
  const env = { [CONFIG_ENV]: JSON.stringify(witness) }
  t.equal(loadReplicaProcessConfig([], env).id, 3)
  t.equal(
    loadReplicaProcessConfig(['--id', '1', '--data-dir', '/d'], { [CONFIG_ENV]: JSON.stringify(voter) })
      .dataDir,
    '/d',
  )
  const file = join(dir, 'env.json')
  writeFileSync(file, JSON.stringify(voter))
  t.equal(loadReplicaProcessConfig(['--config', file], env).id, 1)
  t.throws(() => loadReplicaProcessConfig([], { [CONFIG_ENV]: '{' }), /\$PLOVER_QR_CONFIG is not valid JSON/)
})

t.test('argument errors', async (t) => {
  t.throws(() => loadReplicaProcessConfig([], {}), /missing --config FILE/)
  t.throws(() => loadReplicaProcessConfig(['--bogus'], {}), /unknown argument "--bogus"/)
  t.throws(() => loadReplicaProcessConfig(['--config'], {}), /--config needs a value/)
  t.throws(
    () => loadReplicaProcessConfig(['--config', join(dir, 'none.json')], {}),
    /cannot read config file/,
  )
  const file = join(dir, 'bad.json')
  writeFileSync(file, '{ id: 1')
  t.throws(() => loadReplicaProcessConfig(['--config', file], {}), /is not valid JSON/)
  writeFileSync(file, JSON.stringify(witness))
  t.throws(
    () => loadReplicaProcessConfig(['--config', file, '--id', 'x'], {}),
    /id must be a positive integer/,
  )
  t.throws(() => loadReplicaProcessConfig(['--config', file, '--metrics-port', '0'], {}), /metrics\.port/)
  t.ok(wantsHelp(['--help']) && wantsHelp(['-h']) && !wantsHelp(['--config', 'x']))
})

t.test('host checks: image files, bridge, tap', async (t) => {
  const sys = join(dir, 'sys-class-net')
  mkdirSync(join(sys, 'plvbr0', 'bridge'), { recursive: true })
  const cfg = parseReplicaProcessConfig(voter)
  t.throws(() => checkHost(cfg, sys), /vm\.kernel: image file .*bzImage does not exist/)
  writeFileSync(vm.kernel, 'k')
  t.throws(() => checkHost(cfg, sys), /vm\.initrd: image file .*initrd does not exist/)
  writeFileSync(vm.initrd, 'i')
  t.throws(() => checkHost(cfg, sys), /vm\.tap: network interface plvtap0 does not exist/)
  mkdirSync(join(sys, 'plvtap0'))
  t.throws(
    () => checkHost({ ...cfg, vm: { ...cfg.vm!, bridge: 'plvtap0' } }, sys),
    /vm\.bridge: plvtap0 is not a bridge/,
  )
  const err = t.throws(() => checkHost({ ...cfg, vm: { ...cfg.vm!, ramPath: '/nonexistent/x.ram' } }, sys))
  t.match(err, { exitCode: EXIT.config, message: /vm\.ramPath: directory \/nonexistent does not exist/ })
  t.doesNotThrow(() => checkHost(cfg, sys), 'all present (qemu-system-x86_64 and ip on PATH)')
  t.doesNotThrow(() => checkHost(parseReplicaProcessConfig(witness), sys), 'a witness needs none of it')
})

t.test('port checks: a port in use is named', async (t) => {
  const blocker = net.createServer()
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => blocker.close())
  const used = (blocker.address() as net.AddressInfo).port
  // The witness's own consensus port: free (bound and released), so the metrics port is the one.
  const probe = net.createServer()
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()))
  const free = (probe.address() as net.AddressInfo).port
  await new Promise((r) => probe.close(r))
  const mine = [...replicas.slice(0, 2), { ...replicas[2], consensusPort: free }]
  const cfg = parseReplicaProcessConfig({ ...witness, replicas: mine, metrics: { port: used } })
  await t.rejects(checkPorts(cfg), {
    exitCode: EXIT.config,
    message: `metrics port ${used} on 127.0.0.1 is already in use`,
  })
  const other = parseReplicaProcessConfig({
    ...witness,
    replicas: [...replicas.slice(0, 2), { ...replicas[2], host: '192.0.2.1' }],
  })
  await t.rejects(checkPorts(other), {
    message: /consensus address 192\.0\.2\.1 is not an address of this host/,
  })
})
