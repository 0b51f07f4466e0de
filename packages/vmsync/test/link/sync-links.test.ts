// SyncLinks on real loopback sockets: the backup dials the leader's sync port and names itself
// in its first frame; the leader hands the link to the protocol with the backup's id, and the
// frames after the identity reach the protocol. A dialer that sends anything else first, or
// nothing, is closed; a replica that is not accepting refuses.
import t from 'tap'
import { decodeSyncIdentity, encodeSyncIdentity, SyncLinks } from '../../src/link/sync-links.js'
import { connectSyncLink, type TcpSyncLink } from '../../src/link/tcp-link.js'
import { freePort, until } from '../fixtures/consensus-group.js'
import { PSK, waitEvent } from '../protocol/fixtures/harness.js'

const quiet = { info: () => {}, warn: () => {} }

interface Side {
  links: SyncLinks
  port: number
  got: { link: TcpSyncLink; direction: string; peer: number }[]
  warnings: string[]
}

async function side(
  id: number,
  o: { leader: () => boolean; leaderPort?: () => number | undefined; leaderId?: number },
) {
  const port = await freePort()
  const s: Side = { port, got: [], warnings: [], links: undefined as unknown as SyncLinks }
  s.links = new SyncLinks({
    host: '127.0.0.1',
    port,
    psk: PSK,
    selfId: id,
    identityTimeoutMs: 300,
    logger: { ...quiet, warn: (m) => s.warnings.push(m) },
    isLeader: o.leader,
    accepting: o.leader,
    leaderAddress: () => {
      const p = o.leaderPort?.()
      return p ? { id: o.leaderId ?? 0, host: '127.0.0.1', port: p } : undefined
    },
    onLink: (link, direction, peer) => s.got.push({ link, direction, peer }),
  })
  await s.links.listen()
  t.teardown(() => s.links.close())
  return s
}

t.test('identity frames round-trip, and nothing else passes for one', async (t) => {
  t.equal(decodeSyncIdentity(encodeSyncIdentity(42)), 42)
  t.equal(decodeSyncIdentity(encodeSyncIdentity(0)), undefined, 'id 0 is no id')
  t.equal(decodeSyncIdentity(new Uint8Array(16)), undefined)
  t.equal(decodeSyncIdentity(encodeSyncIdentity(7).subarray(1)), undefined, 'truncated')
})

t.test('the backup names itself; the leader gets its id and the frames after it', async (t) => {
  const leader = await side(1, { leader: () => true })
  const backup = await side(2, { leader: () => false, leaderPort: () => leader.port, leaderId: 1 })
  backup.links.refresh()
  await until('both ends have the link', () => leader.got.length === 1 && backup.got.length === 1)
  t.same(
    leader.got.map((g) => [g.direction, g.peer]),
    [['from-backup', 2]],
    'the leader knows its backup is replica 2',
  )
  t.same(
    backup.got.map((g) => [g.direction, g.peer]),
    [['to-primary', 1]],
  )
  const atLeader = waitEvent<[Uint8Array]>(leader.got[0]!.link, 'message')
  await backup.got[0]!.link.send(Buffer.from('first protocol frame'))
  const [m] = await atLeader
  t.equal(Buffer.from(m).toString(), 'first protocol frame', 'the protocol sees what follows the identity')
})

t.test('a dialer that does not identify itself is closed', async (t) => {
  const leader = await side(1, { leader: () => true })
  const other = await connectSyncLink({ host: '127.0.0.1', port: leader.port, psk: PSK })
  const closed = waitEvent(other, 'close')
  await other.send(Buffer.from('a protocol frame first'))
  await closed
  t.same(leader.got, [], 'never handed to the protocol')
  t.match(leader.warnings.join('\n'), /first frame is not an identity/)

  const silent = await connectSyncLink({ host: '127.0.0.1', port: leader.port, psk: PSK })
  await waitEvent(silent, 'close')
  t.same(leader.got, [])
  t.match(leader.warnings.join('\n'), /did not identify itself/)
})

t.test('a replica that is not the leader refuses links', async (t) => {
  const notLeader = await side(1, { leader: () => false })
  const l = await connectSyncLink({ host: '127.0.0.1', port: notLeader.port, psk: PSK })
  const closed = waitEvent(l, 'close')
  void l.send(encodeSyncIdentity(2)).catch(() => {})
  await closed
  t.same(notLeader.got, [])
})
