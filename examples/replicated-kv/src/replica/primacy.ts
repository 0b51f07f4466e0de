// Whether this replica's VM may act as primary now that its log leads.
//
// Consensus elects any up-to-date voter; only a VM whose state is a correct execution of the
// committed log may serve. A backup is trusted after a (full) sync; a fresh VM is trusted only
// while the log has never carried an input (a brand-new cluster). A leader whose VM is not
// trusted would answer clients from an empty or stale VM and lose acknowledged writes, so it
// refuses to be primary and hands leadership to another VM voter (which may be trusted).
//
// The decision waits for the leader's own no-op entry to be applied: by then every earlier
// entry has been applied too, so "has any input ever been committed" is known (vmsync's
// InputHistory, which also counts a compacted log as having carried inputs).
import { type Entry, EntryType, MemberRole, type Replica } from '@plover/consensus'
import type { InputHistory } from '@plover/vmsync'
import type { Logger } from '../runtime/logger.js'
import type { VmStack } from './vm-stack.js'

const TRANSFER_EVERY_MS = 1000

export class PrimacyGate {
  /** Term of the last leader no-op applied (ours, if it equals the current term). */
  private noopTerm = 0
  private awaitingNoop = false
  private timer: NodeJS.Timeout | undefined
  private nextCandidate = 0
  private vmStack: VmStack | undefined

  /** Create right after the replica opens, before any entry is applied, so none is missed. */
  constructor(
    private readonly replica: Replica,
    private readonly history: Pick<InputHistory, 'carriedInput'>,
    private readonly logger: Logger,
  ) {
    replica.on('apply', (e) => this.onApply(e))
  }

  attach(vm: VmStack): void {
    this.vmStack = vm
  }

  private get vm(): VmStack {
    if (!this.vmStack) throw new Error('PrimacyGate used before attach()')
    return this.vmStack
  }

  /** Called on every leadership change of the log. */
  onLeadership(isLeader: boolean): void {
    this.stopTransfers()
    if (!isLeader) {
      this.awaitingNoop = false
      this.vm.setLeader(false)
      return
    }
    if (this.vm.trusted) {
      this.vm.setLeader(true)
      return
    }
    if (this.noopTerm === this.replica.term) this.decide()
    else this.awaitingNoop = true
  }

  close(): void {
    this.stopTransfers()
  }

  private onApply(e: Entry): void {
    if (e.type === EntryType.Empty) this.noopTerm = e.term
    if (e.type === EntryType.Empty && this.awaitingNoop && e.term === this.replica.term) {
      this.awaitingNoop = false
      this.decide()
    }
  }

  private decide(): void {
    if (this.replica.role !== 'leader') return
    const fresh = !this.history.carriedInput
    if (this.vm.trusted || fresh) {
      this.vm.setLeader(true, { freshLog: fresh })
      return
    }
    this.logger.error('leader with an untrusted VM: refusing to act as primary, handing leadership over')
    this.transfer()
    this.timer = setInterval(() => this.transfer(), TRANSFER_EVERY_MS)
  }

  private transfer(): void {
    if (this.replica.role !== 'leader') {
      this.stopTransfers()
      return
    }
    const others = this.replica.membership.members
      .filter((m) => m.role === MemberRole.Voter && m.id !== this.replica.id)
      .map((m) => m.id)
    if (others.length === 0) {
      this.logger.error('no other VM voter to hand leadership to: unavailable until a trusted replica joins')
      return
    }
    const to = others[this.nextCandidate++ % others.length]
    this.logger.warn('transferring leadership', { to })
    try {
      this.replica.transferLeadership(to)
    } catch (err) {
      this.logger.warn('leadership transfer refused', { to, error: err as Error })
    }
  }

  private stopTransfers(): void {
    clearInterval(this.timer)
    this.timer = undefined
  }
}
