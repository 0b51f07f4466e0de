// Primary side of pre-copy: while the primary's VM keeps running (and taking inputs), send a new
// backup the pages it lacks, round after round, so the full sync that follows — which still
// hashes and compares every page with both VMs paused — finds almost all of them identical and
// pauses the primary only to hash RAM and copy the few pages that changed meanwhile.
//
// Each round hashes all of the running VM's RAM, compares with what the backup holds (its
// PrecopyOffer, updated with every page sent since) and sends the difference. Reads race with the
// guest, so a page sent may already be stale: that is why the full sync compares everything again
// (pre-copy never decides correctness, only how much is left for the paused step).
import { HASH_BYTES } from '../hashing/messages.js'
import type { ReplicatedVm } from '../vm/replicated-vm.js'
import type { SyncChannel } from './channel.js'
import { SyncMessageType } from './messages.js'
import { allPages, divergentPages } from './page-set.js'
import type { PageHashing } from './sync-options.js'

export interface PrecopyOptions {
  /** Most rounds before the full sync may go ahead (default 5). */
  readonly maxRounds?: number
  /**
   * Converged when a round finds at most this many divergent pages (default: 1/32 of the VM's
   * pages): the paused full sync will copy about that many.
   */
  readonly convergedPages?: number
}

export const DEFAULT_PRECOPY_MAX_ROUNDS = 5

/** What one pre-copy round did. */
export interface PrecopyRound {
  readonly round: number
  /** Pages whose hash differed from the backup's at the start of the round. */
  readonly divergentPages: number
  /** Pages sent this round (all divergent ones, unless stopped midway). */
  readonly sentPages: number
  readonly bytesSent: number
  /** Hashing the running VM's RAM, ms. */
  readonly hashMs: number
  readonly totalMs: number
}

export class PrecopySender {
  private stopped = false
  private readyFlag = false
  private running: Promise<void> | undefined
  private readonly backupHashes: Uint8Array
  private readonly rounds: PrecopyRound[] = []

  constructor(
    private readonly vm: ReplicatedVm,
    private readonly hasher: PageHashing,
    private readonly channel: SyncChannel,
    offer: Uint8Array,
    private readonly batchPages: number,
    private readonly opts: PrecopyOptions = {},
  ) {
    this.backupHashes = Uint8Array.from(offer)
  }

  /**
   * True once the rounds converged, stopped converging, or ran out: the next marker may run the
   * full sync. Until then a marker is answered with SyncMode.Deferred.
   */
  get ready(): boolean {
    return this.readyFlag
  }

  /** Pages sent over all rounds. */
  get sentPages(): number {
    return this.rounds.reduce((n, r) => n + r.sentPages, 0)
  }

  /**
   * Runs the rounds; `onRound` sees each. Resolves when done or stopped; rejects on a failed
   * read, hash or send (the caller drops the link: the backup then resumes untrusted).
   */
  start(onRound: (round: PrecopyRound) => void): Promise<void> {
    this.running ??= this.run(onRound).finally(() => {
      this.readyFlag = true
    })
    return this.running
  }

  /** Stops after the batch in flight; resolves once nothing more will be sent. */
  async stop(): Promise<void> {
    this.stopped = true
    await this.running?.catch(() => {})
  }

  private async run(onRound: (round: PrecopyRound) => void): Promise<void> {
    const { vm } = this
    const all = allPages(vm.pageCount)
    const maxRounds = this.opts.maxRounds ?? DEFAULT_PRECOPY_MAX_ROUNDS
    const converged = this.opts.convergedPages ?? Math.ceil(vm.pageCount / 32)
    const buf = new Uint8Array(this.batchPages * vm.pageSize)
    let previous = Number.POSITIVE_INFINITY
    for (let round = 1; round <= maxRounds && !this.stopped; round++) {
      const t0 = performance.now()
      const own = await this.hasher.hash(vm.memorySource, all)
      const hashMs = performance.now() - t0
      if (this.stopped) return
      const diff = divergentPages(all, own, this.backupHashes)
      if (diff.length <= converged) return
      // WHY stop when a round does not halve the difference: the guest dirties pages about as
      // fast as we send them, and further rounds would only cost CPU and bandwidth.
      if (diff.length > previous / 2) return
      let sent = 0
      let bytes = 0
      for (let i = 0; i < diff.length && !this.stopped; i += this.batchPages) {
        const indices = diff.slice(i, i + this.batchPages)
        const data = buf.subarray(0, indices.length * vm.pageSize)
        await vm.readPages(indices, data)
        const before = this.channel.bytesSent
        await this.channel.send({ type: SyncMessageType.PrecopyPages, epoch: 0, round, indices, data })
        bytes += this.channel.bytesSent - before
        // The backup now holds what we hashed (give or take a racing write: see the header).
        for (const p of indices)
          this.backupHashes.set(own.subarray(p * HASH_BYTES, (p + 1) * HASH_BYTES), p * HASH_BYTES)
        sent += indices.length
      }
      const r: PrecopyRound = {
        round,
        divergentPages: diff.length,
        sentPages: sent,
        bytesSent: bytes,
        hashMs,
        totalMs: performance.now() - t0,
      }
      this.rounds.push(r)
      onRound(r)
      previous = diff.length
    }
  }
}
