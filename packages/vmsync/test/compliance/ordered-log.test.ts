// Both OrderedLog implementations pass the OrderedLog compliance suite: the adapter over a real
// @plover/consensus group (two voters and a witness, WALs in temporary directories, loopback
// TCP), and the in-memory cluster.
import t from 'tap'
import { runOrderedLogCompliance } from '../../src/compliance/index.js'
import { ConsensusOrderedLog } from '../../src/log/consensus-log.js'
import { MemoryLogCluster } from '../../src/log/memory-log.js'
import { consensusGroup } from '../fixtures/consensus-group.js'

t.test('ConsensusOrderedLog over a real consensus group', async (t) => {
  await runOrderedLogCompliance(t, async () => {
    // Closed by the group's cleanup, not at the end of the whole test.
    const closers: (() => unknown)[] = []
    const group = await consensusGroup({ teardown: (fn) => closers.push(fn) })
    const replicas = await Promise.all(group.ids.map((id) => group.open(id)))
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
        for (const c of closers) await c()
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
