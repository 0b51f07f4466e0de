// Configuration errors are caught with a message that names the problem.
import t from 'tap'
import { ConfigError } from '../src/config/config-error.js'
import { parseReplicaConfig } from '../src/config/replica-config.js'

const replicas = [
  {
    id: 1,
    role: 'voter',
    host: '127.0.0.1',
    consensusPort: 7001,
    clientPort: 7101,
    syncPort: 7201,
    metricsPort: 7301,
  },
  {
    id: 2,
    role: 'voter',
    host: '127.0.0.1',
    consensusPort: 7002,
    clientPort: 7102,
    syncPort: 7202,
    metricsPort: 7302,
  },
  { id: 3, role: 'witness', host: '127.0.0.1', consensusPort: 7003, metricsPort: 7303 },
]
const bootstrap = [
  { id: 1, role: 'voter' },
  { id: 2, role: 'voter' },
  { id: 3, role: 'witness' },
]
const good = { id: 1, dataDir: '/tmp/x', clusterKey: 'ab'.repeat(16), replicas, bootstrap }

t.test('a valid file parses with defaults', async (t) => {
  const c = parseReplicaConfig(good)
  t.equal(c.id, 1)
  t.equal(c.clusterKey.length, 16)
  t.equal(c.vmPages, 16384)
  t.equal(c.compactAfterEntries, 8192)
  t.equal(c.shutdownTimeoutMs, 10_000)
  t.equal(parseReplicaConfig({ ...good, compactAfterEntries: 100 }).compactAfterEntries, 100)
  t.equal(c.replicas[2].clientPort, undefined, 'a witness has no client port')
  t.equal(c.adminToken, undefined, 'no admin token: the admin route is off')
  t.equal(parseReplicaConfig({ ...good, adminToken: 'x'.repeat(16) }).adminToken, 'x'.repeat(16))
  t.same(parseReplicaConfig({ ...good, metricsTls: { certFile: '/c.pem', keyFile: '/k.pem' } }).metricsTls, {
    certFile: '/c.pem',
    keyFile: '/k.pem',
  })
})

const bad: [string, unknown, RegExp][] = [
  ['own id not in replicas', { ...good, id: 9 }, /unknown peer.*9/],
  [
    'bootstrap names an unknown peer',
    { ...good, bootstrap: [...bootstrap, { id: 7, role: 'voter' }] },
    /unknown peer.*7/,
  ],
  ['short key', { ...good, clusterKey: 'abcd' }, /at least 16 bytes/],
  ['short admin token', { ...good, adminToken: 'letmein' }, /adminToken must be at least 16 characters/],
  [
    'admin token not a string',
    { ...good, adminToken: 1234567890123456 },
    /adminToken must be a non-empty string/,
  ],
  [
    'shutdown limit not a number',
    { ...good, shutdownTimeoutMs: '5s' },
    /shutdownTimeoutMs must be a positive integer/,
  ],
  [
    'compaction threshold not positive',
    { ...good, compactAfterEntries: 0 },
    /compactAfterEntries must be a positive integer/,
  ],
  [
    'bad port',
    { ...good, replicas: [{ ...replicas[0], consensusPort: 70000 }, ...replicas.slice(1)] },
    /consensusPort/,
  ],
  [
    'voter without client port',
    { ...good, replicas: [{ ...replicas[0], clientPort: undefined }, ...replicas.slice(1)] },
    /clientPort/,
  ],
  ['duplicate id', { ...good, replicas: [...replicas, replicas[0]] }, /listed twice/],
  ['unknown setting', { ...good, colour: 'blue' }, /unknown setting "colour"/],
  ['witness role mismatch', { ...good, bootstrap: [{ id: 1, role: 'witness' }] }, /witness/],
  ['not an object', [1, 2], /JSON object/],
]
for (const [name, doc, msg] of bad) {
  t.test(name, async (t) => {
    t.throws(() => parseReplicaConfig(doc), ConfigError)
    t.throws(() => parseReplicaConfig(doc), msg)
  })
}
