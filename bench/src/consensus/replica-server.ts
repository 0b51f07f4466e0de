// One Plover replica as its own process for the bench: Replica + a tiny client port.
// argv[2] = JSON config; reports {leader} over IPC so the parent can find the leader.
import { createServer } from 'node:net'
import { EntryType, MemberRole, Replica } from '@plover/consensus'
import { encodeResponse, FrameDecoder, parseRequest } from './protocol.js'

interface Config {
  id: number
  dir: string
  port: number
  clientPort: number
  peers: [number, number][]
  tickMs: number
  electionTicks: number
  heartbeatTicks: number
  walIo: 'threadpool' | 'inline'
}

const cfg = JSON.parse(process.argv[2]) as Config
const replica = await Replica.open({
  id: cfg.id,
  dir: cfg.dir,
  listen: { host: '127.0.0.1', port: cfg.port },
  peers: new Map(cfg.peers.map(([id, port]) => [id, { host: '127.0.0.1', port }])),
  membership: {
    members: [cfg.id, ...cfg.peers.map((p) => p[0])].map((id) => ({ id, role: MemberRole.Voter })),
  },
  clusterKey: Buffer.from('bench-cluster-key-0123456789abcdef'),
  tickMs: cfg.tickMs,
  electionTicks: cfg.electionTicks,
  heartbeatTicks: cfg.heartbeatTicks,
  wal: { io: cfg.walIo },
})
replica.on('leader', (leader, term) => process.send?.({ type: 'leader', leader, term }))
// Like a real app (Plover compacts at every VM sync): snapshot every 10 000 applied entries,
// keeping 5 000 behind for slow followers (etcd keeps 5 000 too), so memory stays bounded.
let applied = 0
let compactedTo = 0
let compacting = false
replica.on('apply', (e) => {
  applied = e.index
  if (!compacting && applied - compactedTo >= 15_000) {
    compacting = true
    const to = applied - 5_000
    replica
      .compact(to, Buffer.from(`bench-state@${to}`))
      .then(() => {
        compactedTo = to
      })
      .catch((err: Error) => console.error(`replica ${cfg.id}: compact: ${err.message}`))
      .finally(() => {
        compacting = false
      })
  }
})
replica.on('error', (e) => {
  console.error(`replica ${cfg.id}: ${e.message}`)
  process.exit(1)
})

const server = createServer((socket) => {
  socket.setNoDelay(true)
  const dec = new FrameDecoder(16 * 1024 * 1024)
  let out: Buffer[] = []
  let flushScheduled = false
  const reply = (b: Buffer) => {
    out.push(b)
    if (!flushScheduled) {
      flushScheduled = true
      setImmediate(() => {
        flushScheduled = false
        socket.write(Buffer.concat(out))
        out = []
      })
    }
  }
  socket.on('data', (chunk: Buffer) => {
    dec.push(chunk)
    for (let f = dec.next(); f; f = dec.next()) {
      const { req, data } = parseRequest(f)
      replica.propose(EntryType.Normal, data).then(
        (index) => reply(encodeResponse(req, true, index)),
        (e: { leader?: number }) => reply(encodeResponse(req, false, e.leader ?? 0)),
      )
    }
  })
  socket.on('error', () => {})
})
server.listen(cfg.clientPort, '127.0.0.1', () => process.send?.({ type: 'ready' }))
process.on('message', (m: { type: string }) => {
  if (m.type === 'close') void replica.close().then(() => process.exit(0))
})
