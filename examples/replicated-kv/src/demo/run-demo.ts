// The demo, phase by phase: three replica processes (two VM voters, one witness), a client
// workload through the primary, SIGKILL of the primary midway, failover to the backup with the
// witness's vote, re-protection by a spare replica — or by the killed one, restarted on its old
// data directory — (membership change + full sync), and the read-back of every acknowledged write
// from the new primary. Used by src/main.ts and the test.
import { KvClusterClient } from '../client/kv-cluster-client.js'
import { DemoCluster } from './cluster.js'
import { type ClusterNumbers, scrapeCluster } from './cluster-numbers.js'
import { metric } from './metrics-scrape.js'
import { reprotect } from './reprotect.js'
import { StatusLine } from './status-line.js'
import { sleep, until } from './until.js'
import { verifyAcked, Workload, type WorkloadStats } from './workload.js'

export interface DemoOptions {
  /** How long the client workload runs (the kill happens at 40 %, the spare starts at 65 %). */
  readonly workloadMs: number
  readonly workers: number
  readonly vmPages: number
  readonly status?: StatusLine
  /**
   * Who re-protects the new primary: 'spare' (default: replica 4, a fresh data directory) or
   * 'restart' (the killed replica again, on its old data directory and WAL, as after a reboot).
   */
  readonly rejoin?: 'spare' | 'restart'
  /** The replicas' compactAfterEntries (default: theirs, 8192). */
  readonly compactAfterEntries?: number
  /** Called as soon as the cluster exists, so that Ctrl-C can clean it up. */
  readonly onCluster?: (c: DemoCluster) => void
}

export interface DemoResult {
  readonly firstPrimary: number
  readonly newPrimary: number | undefined
  readonly spare: number
  /** SIGKILL -> a new leader reported by the survivors (ms). */
  readonly electionMs: number | undefined
  /** SIGKILL -> the client's first acknowledged operation on the new primary (ms). */
  readonly clientResumeMs: number | undefined
  /** Spare started -> the new primary's outputs protected again (ms). */
  readonly reprotectMs: number | undefined
  readonly acked: number
  readonly checked: number
  readonly lost: readonly string[]
  readonly workload: WorkloadStats
  readonly reconnects: number
  readonly numbers: ClusterNumbers
  /** First index still in each surviving replica's log at the end (> 1: compacted or installed). */
  readonly logStarts: ReadonlyMap<number, number>
  readonly cleanShutdown: boolean
  readonly workloadErrors: readonly string[]
  readonly durationMs: number
}

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const status = o.status ?? new StatusLine()
  const t0 = Date.now()
  const cluster = await DemoCluster.create({ vmPages: o.vmPages, compactAfterEntries: o.compactAfterEntries })
  o.onCluster?.(cluster)
  let client: KvClusterClient | undefined
  let workload: Workload | undefined
  let ticker: NodeJS.Timeout | undefined
  try {
    status.say(
      `Starting replicas 1 and 2 (SimulatedVm, ${(o.vmPages * 4) / 1024} MiB) and 3 (witness) in ${cluster.root}`,
    )
    const leader = await cluster.startTrio()
    const firstPrimary = leader.id
    status.say(
      `Replica ${firstPrimary} leads (term ${leader.term}) and is primary; the backup completed its full sync: outputs are protected.`,
    )

    client = new KvClusterClient({
      endpoints: cluster.clientEndpoints,
      clientId: (Math.random() * 2 ** 32) >>> 0,
    })
    const wl = new Workload(client, {
      workers: o.workers,
      retryMs: 20_000,
      tag: Date.now().toString(36),
    })
    workload = wl
    status.say(
      `Client: ${o.workers} concurrent workers, 50 % SET (fresh key, unique value) / 50 % GET, for ${o.workloadMs / 1000} s`,
    )
    status.begin(await scrapeCluster(cluster.procs.values()))
    wl.start()
    const wStart = Date.now()
    let primaryLabel: number | string = firstPrimary
    let mode = 'protected'
    const tick = async () => {
      const n = await scrapeCluster(cluster.procs.values())
      status.update(n, { elapsedS: (Date.now() - t0) / 1000, primary: primaryLabel, mode })
    }
    ticker = setInterval(() => void tick(), 500)

    // --- failover ---
    await sleep(o.workloadMs * 0.4)
    const opsAtKill = wl.ops
    status.say(`SIGKILL replica ${firstPrimary} (the primary) after ${opsAtKill} client operations`)
    const killAt = Date.now()
    await cluster.sigkill(firstPrimary)
    primaryLabel = '?'
    mode = 'electing'
    const survivor = await until('a new leader', 20_000, async () => {
      const l = await cluster.leader()
      return l && l.id !== firstPrimary ? l : undefined
    })
    const electionMs = Date.now() - killAt
    primaryLabel = survivor.id
    mode = 'UNPROTECTED'
    status.say(
      `Replica ${survivor.id} elected in term ${survivor.term} with the witness's vote after ${electionMs} ms; ` +
        'it continues from its own VM state (no rollback). No backup: outputs released unprotected.',
    )
    // Counted from the election on: answers already in the client's socket buffer at the kill
    // are not the new primary's.
    const opsAtElection = wl.ops
    await until('the client to carry on', 20_000, async () => wl.ops > opsAtElection || undefined)
    const clientResumeMs = Date.now() - killAt
    status.say(`Client reconnected and carries on (${clientResumeMs} ms after the kill).`)

    // --- re-protection ---
    await sleep(Math.max(0, wStart + o.workloadMs * 0.65 - Date.now()))
    const spare = o.rejoin === 'restart' ? firstPrimary : 4
    const { ms: reprotectMs, membership } = await reprotect(cluster, survivor.id, firstPrimary, spare, {
      onRemoved: (m) =>
        status.say(
          o.rejoin === 'restart'
            ? `Removed replica ${firstPrimary} from the membership (${m}); restarting it on its old data directory`
            : `Removed replica ${firstPrimary} from the membership (${m}); starting spare replica ${spare}`,
        ),
    })
    mode = 'protected'
    status.say(
      `Replica ${spare} joined as a learner, completed a full sync ${reprotectMs} ms after it started ` +
        `(the output guard left unprotected mode), and was made a voter (${membership}).`,
    )

    await sleep(Math.max(0, wStart + o.workloadMs - Date.now()))
    await wl.stop()
    clearInterval(ticker)
    ticker = undefined
    status.say(
      `Workload stopped. Reading back all ${wl.acked.size} acknowledged writes from replica ${survivor.id}...`,
    )
    const check = await verifyAcked(client, wl.acked, { concurrency: 256, retryMs: 20_000 })
    const numbers = await scrapeCluster(cluster.procs.values())
    // The killed replica, unless it came back.
    const gone = o.rejoin === 'restart' ? undefined : firstPrimary
    const logStarts = new Map<number, number>()
    for (const p of cluster.procs.values()) {
      if (p.addr.id === gone || !p.alive) continue
      const m = await p.scrape()
      if (m) logStarts.set(p.addr.id, metric(m, 'plover_replica_log_first_index'))
    }
    const reconnects = client.reconnects
    client.close()
    client = undefined
    await cluster.stopAll()
    const cleanShutdown = [...cluster.procs.values()]
      .filter((p) => p.addr.id !== gone && p.child)
      .every((p) => p.exit?.code === 0)
    return {
      firstPrimary,
      newPrimary: survivor.id,
      spare,
      electionMs,
      clientResumeMs,
      reprotectMs,
      acked: wl.acked.size,
      checked: check.checked,
      lost: check.lost,
      workload: wl.stats,
      reconnects,
      numbers,
      logStarts,
      cleanShutdown,
      workloadErrors: wl.errors,
      durationMs: Date.now() - t0,
    }
  } catch (err) {
    status.clear()
    const tails = [...cluster.procs.values()]
      .filter((p) => p.child)
      .map(
        (p) =>
          `--- replica ${p.addr.id} (${p.exit ? `exited ${p.exit.code ?? p.exit.signal}` : 'running'}) ---\n${p.logTail(8)}`,
      )
      .join('\n')
    throw new Error(`${(err as Error).message}\n${tails}`)
  } finally {
    if (ticker) clearInterval(ticker)
    workload?.halt()
    client?.close()
    await cluster.cleanup()
  }
}
