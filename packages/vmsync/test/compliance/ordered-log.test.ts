// Both OrderedLog implementations pass the OrderedLog compliance suite: the adapter over a real
// @plover/consensus group (two voters and a witness, WALs in temporary directories, loopback
// TCP), and the in-memory cluster.
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemberRole, type NodeId, Replica } from '@plover/consensus'
import t from 'tap'
import { runOrderedLogCompliance } from '../../src/compliance/index.js'
import { ConsensusOrderedLog } from '../../src/log/consensus-log.js'
import { MemoryLogCluster } from '../../src/log/memory-log.js'

async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as { port: number }).port
  await new Promise((r) => s.close(r))
  return port
}

t.test('ConsensusOrderedLog over a real consensus group', async (t) => {
  await runOrderedLogCompliance(t, async () => {
    const ids: NodeId[] = [1, 2, 3]
    const ports = await Promise.all(ids.map(() => freePort()))
    const dirs = ids.map((id) => mkdtempSync(join(tmpdir(), `plover-log-compliance-${id}-`)))
    const replicas = await Promise.all(
      ids.map((id) =>
        Replica.open({
          id,
          dir: dirs[id - 1]!,
          listen: { host: '127.0.0.1', port: ports[id - 1]! },
          peers: new Map(
            ids.filter((p) => p !== id).map((p) => [p, { host: '127.0.0.1', port: ports[p - 1]! }]),
          ),
          membership: {
            members: [
              { id: 1, role: MemberRole.Voter },
              { id: 2, role: MemberRole.Voter },
              { id: 3, role: MemberRole.Witness },
            ],
          },
          clusterKey: new Uint8Array(16).fill(5),
          tickMs: 10,
          electionTicks: 10,
        }),
      ),
    )
    // In the turn the replicas opened in, as a runtime does.
    const logs = replicas.map((r) => new ConsensusOrderedLog(r))
    const end = Date.now() + 10_000
    while (!logs.some((l) => l.isLeader) && Date.now() < end) await new Promise((r) => setTimeout(r, 10))
    const leader = logs.find((l) => l.isLeader)
    if (!leader) throw new Error('no leader elected within 10 s')
    return {
      leader,
      followers: logs.filter((l) => l !== leader),
      cleanup: async () => {
        for (const l of logs) l.detach()
        await Promise.all(replicas.map((r) => r.close()))
        for (const d of dirs) rmSync(d, { recursive: true, force: true })
      },
    }
  })
})

t.test('in-memory log cluster', async (t) => {
  await runOrderedLogCompliance(t, async () => {
    const cluster = new MemoryLogCluster()
    const members = [cluster.join(), cluster.join(), cluster.join()]
    cluster.setLeader(members[0])
    return { leader: members[0]!, followers: members.slice(1), cleanup: async () => {} }
  })
})
