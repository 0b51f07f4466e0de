// A primary/backup pair of SimulatedVms on the full vmsync stack (in-memory log and link, real
// PageHasher): what the idle-sync bench syncs, under each policy, with the same workload.
import {
  createMemoryLinkPair,
  MemoryLogCluster,
  PageHasher,
  SimulatedVm,
  type SyncReport,
  VmReplica,
} from '@plover/vmsync'

export interface SimPairOptions {
  readonly pageCount: number
  readonly seed: number
  readonly hasherThreads: number
}

export interface SyncResult {
  readonly primary: SyncReport
  readonly backup: SyncReport
}

export class SimPair {
  readonly pvm: SimulatedVm
  readonly bvm: SimulatedVm
  readonly primary: VmReplica
  readonly backup: VmReplica
  private readonly hasher: PageHasher

  constructor(o: SimPairOptions) {
    const cluster = new MemoryLogCluster()
    const plog = cluster.join()
    const blog = cluster.join()
    cluster.setLeader(plog)
    // Different seeds: the replicas' "physical world" (clock jitter, allocation order) differs,
    // which is what makes some dirty pages diverge.
    this.pvm = new SimulatedVm({ pageCount: o.pageCount, seed: o.seed })
    this.bvm = new SimulatedVm({ pageCount: o.pageCount, seed: o.seed + 1 })
    this.hasher = new PageHasher({ threads: o.hasherThreads })
    const common = { hasher: this.hasher, quietMaxMs: 200, peerTimeoutMs: 10_000 }
    const pvm = this.pvm
    const bvm = this.bvm
    this.primary = new VmReplica({
      ...common,
      log: plog,
      vm: pvm,
      tracker: pvm.dirtyTracker,
      role: 'primary',
      quiesce: () => pvm.drained(),
    })
    this.backup = new VmReplica({
      ...common,
      log: blog,
      vm: bvm,
      tracker: bvm.dirtyTracker,
      role: 'backup',
      quiesce: () => bvm.drained(),
    })
    const [a, b] = createMemoryLinkPair()
    this.primary.attachLink(a)
    this.backup.attachLink(b)
  }

  async start(): Promise<void> {
    await this.pvm.resume()
    await this.bvm.resume()
    await this.sync() // the first sync is a full one: protection starts here, not measured
  }

  /** One sync, end to end: marker → both sides report → SyncDone committed (outputs released). */
  async sync(): Promise<SyncResult> {
    const p = once<SyncReport>(this.primary, 'sync-completed')
    const b = once<SyncReport>(this.backup, 'sync-completed')
    const failed = new Promise<never>((_, reject) => {
      this.primary.once('sync-failed', (f) => reject(f.error))
      this.backup.once('sync-failed', (f) => reject(f.error))
    })
    const epoch = await this.primary.requestSync()
    const committed = new Promise<void>((resolve) => {
      const on = (e: number) => {
        if (e < epoch) return
        this.primary.primary!.off('committed', on)
        resolve()
      }
      this.primary.primary!.on('committed', on)
    })
    const [primary, backup] = await Promise.race([Promise.all([p, b]), failed])
    await committed
    return { primary, backup }
  }

  async close(): Promise<void> {
    await this.primary.close()
    await this.backup.close()
    await this.hasher.close()
    await this.pvm.close()
    await this.bvm.close()
  }
}

function once<T>(
  em: { once(event: 'sync-completed', fn: (r: T) => void): unknown },
  event: 'sync-completed',
): Promise<T> {
  return new Promise((resolve) => em.once(event, resolve))
}
