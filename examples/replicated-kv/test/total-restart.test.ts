// Every replica dies at once (a power cut) and restarts on its data directory. The VMs' memory is
// gone, so no replica holds the state behind the acknowledged writes: the cluster must refuse to
// serve rather than answer from an empty VM. The logs were compacted after the last input, so
// what is left of them holds none — the case where "the log never carried an input" (a brand-new
// cluster, where a fresh VM may lead) must not be inferred from the surviving entries.
import { KvOp, KvStatus } from '@plover/vmsync'
import t from 'tap'
import { KvClusterClient } from '../src/client/kv-cluster-client.js'
import { DemoCluster, TRIO } from '../src/demo/cluster.js'
import { metric } from '../src/demo/metrics-scrape.js'
import { sleep, until } from '../src/demo/until.js'

t.test('all replicas killed and restarted on compacted logs: no empty VM serves clients', async (t) => {
  // Syncs at least every 100 ms and a compaction at nearly every sync cut.
  const cluster = await DemoCluster.create({
    vmPages: 1024,
    compactAfterEntries: 2,
    sync: { maxIntervalMs: 100 },
  })
  t.teardown(() => cluster.cleanup())
  const bootstrap = TRIO
  const leader = await cluster.startTrio()
  const client = new KvClusterClient({ endpoints: cluster.clientEndpoints, clientId: 1 })
  t.teardown(() => client.close())
  for (let i = 0; i < 20; i++) {
    const r = await client.call(KvOp.Set, `k${i}`, `v${i}`, Date.now() + 10_000)
    t.equal(r.status, KvStatus.Ok, `SET k${i} acknowledged`, { diagnostic: false })
  }
  // Every input is at or below this index; wait until every log starts past it.
  const lastInput = (await cluster.procs.get(leader.id)!.status())?.commitIndex ?? 0
  await until('every log compacted past the last input', 20_000, async () => {
    for (const b of bootstrap) {
      const first = metric(await cluster.procs.get(b.id)!.scrape(), 'plover_replica_log_first_index')
      if (!(first > lastInput + 1)) return false
    }
    return true
  })
  t.pass(`every log starts after index ${lastInput + 1}`)

  for (const b of bootstrap) await cluster.sigkill(b.id)
  for (const b of bootstrap) cluster.start(b.id, bootstrap)
  await until('a leader after the restart', 30_000, () => cluster.leader())

  // For three seconds: no VM acts as primary, and a read gets no answer from an empty VM.
  const reader = new KvClusterClient({
    endpoints: cluster.clientEndpoints,
    clientId: 2,
    requestTimeoutMs: 500,
  })
  t.teardown(() => reader.close())
  const end = Date.now() + 3000
  let answers = 0
  while (Date.now() < end) {
    for (const p of cluster.procs.values()) {
      const s = await p.status()
      t.not(s?.vm?.role, 'primary', `replica ${p.addr.id}'s fresh VM does not act as primary`, {
        diagnostic: false,
      })
    }
    const r = await reader.request(KvOp.Get, 'k0').catch(() => undefined)
    if (r) answers++
    await sleep(200)
  }
  t.equal(answers, 0, 'no client request was answered (the acknowledged writes are not served as missing)')
  const logs = [...cluster.procs.values()].map((p) => p.logTail(200)).join('\n')
  t.match(logs, /refusing to act as primary/, 'the leader says why it does not serve')
})
