// One replica process: a consensus replica (WAL in the data dir, authenticated TCP transport)
// and, unless it is the witness, a VM stack, the client port and the sync links. Leadership of
// the log is the single source of truth for "who is primary".
import { mkdir } from 'node:fs/promises'
import { MemberRole, type Membership, type NodeId, type PeerAddress, Replica } from '@plover/consensus'
import {
  ConsensusOrderedLog,
  handOverPrimacy,
  LearnerPromotion,
  LogCompaction,
  type MembershipRequest,
  OperatorEndpoint,
  PrimacyGate,
  proposeMembership,
  readOperatorTls,
  SyncLinks,
  vmBackupCaughtUp,
} from '@plover/vmsync'
import type { NotLeaderInfo } from '../client/wire.js'
import { ConfigError } from '../config/config-error.js'
import { type ReplicaConfig, self } from '../config/replica-config.js'
import type { Logger } from '../runtime/logger.js'
import { ClientServer } from './client-server.js'
import { formatSamples, type Sample } from './prom-text.js'
import { VmStack } from './vm-stack.js'

const ROLE: Record<string, MemberRole> = {
  voter: MemberRole.Voter,
  witness: MemberRole.Witness,
  learner: MemberRole.Learner,
}
const ROLE_NAME = ['voter', 'witness', 'learner']

/** Turns "address in use" and friends into one operator-readable line. */
async function bind<T>(what: string, host: string, port: number, f: () => Promise<T>): Promise<T> {
  try {
    return await f()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EADDRINUSE') throw new ConfigError(`${what} port ${port} on ${host} is already in use`)
    if (code === 'EACCES') throw new ConfigError(`no permission to listen on ${what} port ${port} on ${host}`)
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') {
      throw new ConfigError(`${what} address ${host} is not an address of this host`)
    }
    throw err
  }
}

export class ReplicaNode {
  private replica: Replica | undefined
  private log: ConsensusOrderedLog | undefined
  private compaction: LogCompaction | undefined
  private vm: VmStack | undefined
  private clients: ClientServer | undefined
  private links: SyncLinks | undefined
  private http: OperatorEndpoint | undefined
  private primacy: PrimacyGate | undefined
  private promotion: LearnerPromotion | undefined
  /** The replica id of the backup on our sync port (while primary). */
  private backupId: number | undefined
  private closing: Promise<void> | undefined
  private failoverCount = 0

  private constructor(
    readonly cfg: ReplicaConfig,
    private readonly logger: Logger,
  ) {}

  /** Binds every port, opens the WAL, starts the VM (unless witness). Cleans up on failure. */
  static async start(
    cfg: ReplicaConfig,
    logger: Logger,
    onFatal: (err: Error) => void,
  ): Promise<ReplicaNode> {
    const node = new ReplicaNode(cfg, logger)
    try {
      await node.open(onFatal)
    } catch (err) {
      await node.close().catch(() => {})
      throw err
    }
    return node
  }

  private async open(onFatal: (err: Error) => void): Promise<void> {
    const cfg = this.cfg
    const me = self(cfg)
    try {
      await mkdir(cfg.dataDir, { recursive: true })
    } catch (err) {
      throw new ConfigError(`cannot create data directory ${cfg.dataDir}: ${(err as Error).message}`)
    }
    const tls =
      cfg.metricsTls &&
      (await readOperatorTls(cfg.metricsTls, 'metricsTls').catch((err: Error) => {
        throw new ConfigError(err.message)
      }))
    this.http = new OperatorEndpoint({
      host: me.host,
      port: me.metricsPort,
      ...(cfg.adminToken === undefined ? {} : { adminToken: cfg.adminToken }),
      ...(tls ? { tls } : {}),
      handlers: {
        metrics: () => this.metricsText(),
        status: () => this.status(),
        membership: (req) => this.changeMembership(req),
      },
    })
    await bind('metrics', me.host, me.metricsPort, () => this.http!.listen())
    const peers = new Map<NodeId, PeerAddress>()
    for (const r of cfg.replicas)
      if (r.id !== cfg.id) peers.set(r.id, { host: r.host, port: r.consensusPort })
    const membership: Membership = { members: cfg.bootstrap.map((b) => ({ id: b.id, role: ROLE[b.role] })) }

    if (me.role === 'voter') {
      this.clients = new ClientServer({
        host: me.host,
        port: me.clientPort!,
        log: this.logger,
        serving: () => (this.log?.isLeader ?? false) && (this.vm?.isPrimary ?? false),
        leaderHint: () => this.leaderHint(),
        submit: (frame) => this.vm?.replica.pushInput(frame),
      })
      await bind('client', me.host, me.clientPort!, () => this.clients!.listen())
      this.links = new SyncLinks({
        host: me.host,
        port: me.syncPort!,
        psk: cfg.clusterKey,
        logger: this.logger,
        isLeader: () => this.log?.isLeader ?? false,
        accepting: () => (this.log?.isLeader ?? false) && (this.vm?.isPrimary ?? false),
        leaderAddress: () => this.leaderSyncAddress(),
        selfId: cfg.id,
        onLink: (link, direction, peer) => {
          if (direction === 'from-backup') this.backupId = peer
          this.vm?.attachLink(link)
        },
      })
      await bind('sync', me.host, me.syncPort!, () => this.links!.listen())
    }

    this.replica = await bind('consensus', me.host, me.consensusPort, () =>
      Replica.open({
        id: cfg.id,
        dir: `${cfg.dataDir}/consensus`,
        listen: { host: me.host, port: me.consensusPort },
        peers,
        membership,
        clusterKey: cfg.clusterKey,
        tickMs: cfg.tickMs,
        electionTicks: cfg.electionTicks,
        preVote: true,
        checkQuorum: true,
      }),
    )
    const replica = this.replica
    const rec = replica.recovery
    this.logger.info('consensus replica open', {
      role: replica.role,
      term: replica.term,
      recoveredEntries: rec.entries.length,
      membership: this.describeMembership(),
    })
    replica.on('error', (err) => {
      this.logger.error('consensus replica stopped', { error: err })
      onFatal(err)
    })
    replica.on('leader', (leader, term) => {
      this.logger.info('leader changed', { leader, term })
      this.links?.refresh()
    })
    this.log = new ConsensusOrderedLog(replica)
    // Every member, the witness included, forgets the log before the last sync cut.
    this.compaction = new LogCompaction(this.log, this.log, { minEntries: cfg.compactAfterEntries })
    this.compaction.on('compacted', (index, epoch) => this.logger.debug('log compacted', { index, epoch }))
    this.compaction.on('error', (err) => this.logger.warn('log compaction failed', { error: err }))
    if (me.role === 'voter') {
      // Synchronously after open (the replayed entries are applied from the next event-loop
      // turn): the VM replica and the gate must see every one of them.
      const vm = VmStack.create({
        log: this.log,
        logger: this.logger,
        pages: cfg.vmPages,
        tuning: cfg.sync,
        replicaId: cfg.id,
        backupCaughtUp: () => this.backupCaughtUp(),
      })
      this.vm = vm
      this.primacy = this.gate(vm)
      // A learner whose full sync protected our outputs becomes a voter (docs/operations.md).
      this.promotion = new LearnerPromotion({ replica, vm: vm.replica, backupId: () => this.backupId })
      this.promotion.on('promoted', (id, index) =>
        this.logger.info('learner promoted to voter after its full sync', {
          id,
          index,
          membership: this.describeMembership(),
        }),
      )
      this.promotion.on('failed', (id, err) =>
        this.logger.debug('learner promotion refused, retrying', { id, error: err }),
      )
      vm.replica.guard.on('release', (f) => {
        // Belt and braces: only a leader's answers ever reach a client.
        if (this.log?.isLeader) this.clients?.deliver(f)
      })
      this.log.on('leadership', (isLeader) => this.onLeadership(isLeader))
      if (this.log.isLeader) this.onLeadership(true)
      await vm.start()
    }
  }

  /** The VM is primary only while the log leads and the VM may serve (see vmsync's PrimacyGate). */
  private gate(vm: VmStack): PrimacyGate {
    const logger = this.logger
    const gate = new PrimacyGate({ replica: this.replica!, log: this.log!, vm: vm.replica })
    gate.on('promoted', ({ trusted, freshLog }) =>
      logger.info('promoted to primary: continuing from this VM state', { trusted, freshLog }),
    )
    gate.on('demoted', () =>
      logger.warn('lost leadership: demoted to backup, held outputs dropped; continuing as a backup', {
        trusted: vm.trusted,
      }),
    )
    gate.on('refused', () =>
      logger.error('leader with an untrusted VM: refusing to act as primary, handing leadership over'),
    )
    gate.on('transfer', (to) => logger.warn('transferring leadership', { to }))
    gate.on('transfer-failed', (reason) => logger.error('leadership not handed over', { reason }))
    return gate
  }

  private onLeadership(isLeader: boolean): void {
    this.logger.info(isLeader ? 'this replica leads the log' : 'this replica no longer leads the log', {
      term: this.replica?.term,
    })
    if (isLeader) this.failoverCount++
    if (!isLeader) this.clients?.dropAll('lost leadership')
    this.links?.refresh()
  }

  /** Leader only: some other VM replica (voter or learner) has (almost) all of our log. */
  private backupCaughtUp(): boolean {
    return this.replica ? vmBackupCaughtUp(this.replica) : false
  }

  private leaderHint(): NotLeaderInfo {
    const leader = this.replica?.leader ?? 0
    const addr = this.cfg.replicas.find((r) => r.id === leader)
    return { leader, client: addr?.clientPort ? `${addr.host}:${addr.clientPort}` : null }
  }

  private leaderSyncAddress(): { id: number; host: string; port: number } | undefined {
    const leader = this.replica?.leader ?? 0
    if (!leader || leader === this.cfg.id) return undefined
    const addr = this.cfg.replicas.find((r) => r.id === leader)
    if (!addr?.syncPort) return undefined
    return { id: leader, host: addr.host, port: addr.syncPort }
  }

  private describeMembership(): string {
    const m = this.replica?.membership
    return m ? m.members.map((x) => `${x.id}:${ROLE_NAME[x.role]}`).join(' ') : ''
  }

  /**
   * POST /admin/membership, checked by the endpoint, proposed here (this replica must lead). A
   * replacement backup is added as a learner first (it cannot campaign while its VM is
   * untrusted); LearnerPromotion makes it a voter once its full sync protected the primary.
   */
  private async changeMembership(req: MembershipRequest): Promise<unknown> {
    const replica = this.replica
    if (!replica) throw new Error('replica not open')
    const index = await proposeMembership(
      replica,
      req,
      (id) => this.cfg.replicas.find((r) => r.id === id)?.role,
    )
    this.logger.info('membership changed', { ...req, index, membership: this.describeMembership() })
    return { index, membership: this.describeMembership() }
  }

  status(): Record<string, unknown> {
    const r = this.replica
    const g = this.vm?.replica.guard.stats()
    return {
      id: this.cfg.id,
      role: r?.role,
      leader: r?.leader,
      term: r?.term,
      commitIndex: r?.commitIndex,
      membership: this.describeMembership(),
      progress: r?.role === 'leader' ? r.status().progress : undefined,
      vm: this.vm
        ? {
            role: this.vm.replica.role,
            trusted: this.vm.trusted,
            protected: g?.isProtected,
            heldFrames: g?.heldFrames,
            hasBackup: this.vm.replica.primary?.hasBackup ?? false,
            backupCaughtUp: this.backupCaughtUp(),
            entries: this.vm.vm.entryCount(),
          }
        : null,
    }
  }

  private async metricsText(): Promise<string> {
    const r = this.replica
    const g = (name: string, help: string, value: number): Sample => ({
      name: `plover_replica_${name}`,
      help,
      type: 'gauge',
      value,
    })
    const samples: Sample[] = [
      g(
        'is_leader',
        '1 while this replica is the consensus leader (= primary)',
        r?.role === 'leader' ? 1 : 0,
      ),
      g('is_witness', '1 for a witness', self(this.cfg).role === 'witness' ? 1 : 0),
      g('leader_id', 'Current leader id (0 = unknown)', r?.leader ?? 0),
      g('term', 'Consensus term', r?.term ?? 0),
      g('commit_index', 'Consensus commit index', r?.commitIndex ?? 0),
      g('log_first_index', 'First index still in the log (compacted before it)', r?.firstIndex ?? 0),
      g('log_compactions_total', 'Log compactions at sync cuts', this.compaction?.compactions ?? 0),
      g('members', 'Members in the current membership', r?.membership.members.length ?? 0),
      g('leaderships_total', 'Times this replica became leader', this.failoverCount),
    ]
    const vm = this.vm
    if (vm) {
      const gs = vm.replica.guard.stats()
      samples.push(
        g('vm_primary', '1 while the VM acts as primary', vm.isPrimary ? 1 : 0),
        g('vm_trusted', '0 while the VM waits for a full sync', vm.trusted ? 1 : 0),
        g('outputs_protected', '1 while outputs are held for a synced backup', gs.isProtected ? 1 : 0),
        g('output_released_frames', 'Output frames released to clients', gs.releasedFrames),
        g('vm_entries', 'Key/value pairs in the VM', vm.vm.entryCount()),
        g('vm_applied_index', 'Highest log index the VM has processed', vm.replica.delivery.appliedThrough),
      )
      if (this.clients) {
        const c = this.clients.stats
        samples.push(
          g('client_requests_total', 'Client requests submitted to the log', c.requests),
          g('client_responses_total', 'Answers written to clients', c.responses),
          g('client_redirects_total', 'Requests answered with NotLeader', c.redirects),
        )
      }
      samples.push(...vm.totals.samples())
    }
    const own = formatSamples(samples, { replica: String(this.cfg.id) })
    return vm ? own + (await vm.metrics.metrics()) : own
  }

  /**
   * A planned stop of the primary: hand leadership to the synced backup first, so its VM takes
   * over now rather than after an election timeout. Does nothing on any other replica.
   */
  async handOver(timeoutMs: number): Promise<void> {
    const replica = this.replica
    const vm = this.vm
    if (!replica || !vm || replica.role !== 'leader') return
    const r = await handOverPrimacy({ replica, vm: vm.replica, backupId: this.backupId, timeoutMs })
    if ('handedTo' in r) this.logger.info('primacy handed over', { to: r.handedTo, term: r.term })
    else this.logger.warn('primacy not handed over: stopping anyway (a failover)', { reason: r.skipped })
  }

  /** Clean shutdown: stop serving, stop the VM, close the WAL. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.clients?.close().catch(() => {})
      this.primacy?.close()
      this.promotion?.close()
      await this.links?.close().catch(() => {})
      await this.vm?.close().catch(() => {})
      this.compaction?.detach()
      this.log?.detach()
      await this.replica?.close().catch(() => {})
      await this.http?.close().catch(() => {})
    })()
    return this.closing
  }
}
