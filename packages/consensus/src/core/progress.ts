// Leader-side view of one follower (etcd's tracker.Progress): how far it matches, what to send
// next, and flow control. Probe = one message at a time until we find where logs agree;
// Replicate = optimistic pipelining bounded by an in-flight window; Snapshot = waiting for a
// snapshot to be installed.
export type ProgressState = 'probe' | 'replicate' | 'snapshot'

export class Progress {
  match = 0
  next: number
  state: ProgressState = 'probe'
  /** Probe: a probe is outstanding; wait for its answer (or a heartbeat response). */
  probeSent = false
  /** Snapshot: index of the snapshot being installed. */
  pendingSnapshot = 0
  /** Snapshot: leader ticks spent waiting (resend after an election timeout: it may be lost). */
  snapshotTicks = 0
  /** Heard from it since the last check-quorum round. */
  recentActive = false
  /** Last index of each in-flight Append (Replicate), oldest first. */
  private inflight: number[] = []
  private readonly maxInflight: number

  constructor(next: number, maxInflight: number) {
    this.next = next
    this.maxInflight = maxInflight
  }

  becomeProbe(): void {
    const from = this.state
    this.state = 'probe'
    this.probeSent = false
    this.inflight = []
    this.next = from === 'snapshot' ? Math.max(this.match + 1, this.pendingSnapshot + 1) : this.match + 1
    this.pendingSnapshot = 0
  }

  becomeReplicate(): void {
    this.state = 'replicate'
    this.probeSent = false
    this.inflight = []
    this.next = this.match + 1
  }

  becomeSnapshot(index: number): void {
    this.state = 'snapshot'
    this.inflight = []
    this.pendingSnapshot = index
    this.snapshotTicks = 0
  }

  /** An acknowledgement up to n; returns whether it told us anything new. */
  maybeUpdate(n: number): boolean {
    this.probeSent = false
    if (n <= this.match) return false
    this.match = n
    this.next = Math.max(this.next, n + 1)
    return true
  }

  /**
   * A rejection of the Append whose previous index was `rejected`; hint is where the follower
   * thinks our logs may agree. Returns false for a stale rejection.
   */
  maybeDecrTo(rejected: number, hint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false
      this.next = this.match + 1
      return true
    }
    if (this.next - 1 !== rejected) return false
    this.next = Math.max(Math.min(rejected, hint + 1), this.match + 1)
    this.probeSent = false
    return true
  }

  /** Record an Append just sent whose last entry is `last` (count entries). */
  sentEntries(count: number, last: number): void {
    if (this.state === 'replicate') {
      if (count > 0) {
        this.next = last + 1
        this.inflight.push(last)
      }
    } else if (this.state === 'probe') {
      this.probeSent = true
    }
  }

  freeUpTo(index: number): void {
    let k = 0
    while (k < this.inflight.length && this.inflight[k] <= index) k++
    if (k > 0) this.inflight.splice(0, k)
  }

  freeFirst(): void {
    this.inflight.shift()
  }

  inflightFull(): boolean {
    return this.inflight.length >= this.maxInflight
  }

  inflightCount(): number {
    return this.inflight.length
  }

  isPaused(): boolean {
    if (this.state === 'probe') return this.probeSent
    if (this.state === 'replicate') return this.inflightFull()
    return true
  }
}
