// One replica process of the QEMU example: a consensus replica (WAL, authenticated TCP) and,
// unless it is the witness, a QEMU guest running redis on a tap, vmsync's VmReplica (input
// coordinator, output guard, sync protocol) and an idle monitor on the QEMU process.
//
// Frames: on the primary, frames arriving from its tap ('net-frame') go into the log through the
// input coordinator; every committed input is injected into BOTH guests in log order; the
// primary's guest outputs are held by the output guard and written to its tap when their sync's
// SyncDone commits. A backup ignores frames arriving on its own tap and its guest's outputs are
// discarded by its guard. The consensus leader is the primary.
//
// Started by the orchestrator (src/demo/run.ts) with the config in $PLOVER_QR_CONFIG and an IPC
// channel; it reports status and events over IPC. SIGTERM, or losing the orchestrator, shuts it
// down cleanly (QEMU stopped, RAM file and its standby taps removed).
import { execFile } from 'node:child_process'
import { mkdir } from 'node:fs/promises'
import { promisify } from 'node:util'
import {
  ConfChangeType,
  MemberRole,
  type Membership,
  type NodeId,
  type PeerAddress,
  Replica,
} from '@plover/consensus'
import { IdleMonitor } from '@plover/idle-monitor'
import {
  guestKernelAppend,
  launch,
  type QemuProcess,
  QemuVm,
  StandbyPool,
  standbyConfig,
  type VmConfig,
} from '@plover/qemu'
import {
  ConsensusOrderedLog,
  LogRecordKind,
  PageHasher,
  SyncLinks,
  SyncMode,
  type SyncReport,
  VmReplica,
} from '@plover/vmsync'
import {
  CONFIG_ENV,
  type MembershipRequest,
  type ReplicaMessage,
  type ReplicaProcessConfig,
} from './config.js'
import { FollowingCpuProbe } from './following-cpu-probe.js'
import { jsonLogger } from './logger.js'

const run = promisify(execFile)
const CAUGHT_UP_SLACK = 1024

const cfg = JSON.parse(process.env[CONFIG_ENV] ?? 'null') as ReplicaProcessConfig | null
if (!cfg) {
  process.stderr.write(`qemu-redis replica: ${CONFIG_ENV} is not set (started by src/main.ts)\n`)
  process.exit(78)
}
const me = cfg.replicas.find((r) => r.id === cfg.id)!
const logger = jsonLogger(
  { replica: cfg.id },
  { level: process.env.PLOVER_LOG_LEVEL === 'debug' ? 'debug' : 'info' },
)
const send = (m: ReplicaMessage) => {
  if (process.connected) process.send?.(m)
}
const event = (name: Extract<ReplicaMessage, { type: 'event' }>['name'], detail?: string) =>
  send({ type: 'event', id: cfg.id, name, at: Date.now(), ...(detail ? { detail } : {}) })

const cleanups: Array<() => Promise<unknown>> = []
let closing: Promise<void> | undefined
function shutdown(code: number): Promise<void> {
  closing ??= (async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {})
    logger.info('stopped', { code })
    process.exit(code)
  })()
  return closing
}
process.on('SIGTERM', () => void shutdown(0))
process.on('SIGINT', () => void shutdown(0))
process.on('disconnect', () => void shutdown(0)) // the orchestrator is gone
process.on('uncaughtException', (err) => {
  logger.error('fatal', { error: err, stack: err.stack })
  event('fatal', err.message)
  void shutdown(1)
})

async function addStandbyTap(name: string, bridge: string): Promise<void> {
  await run('ip', ['tuntap', 'add', 'dev', name, 'mode', 'tap'])
  await run('ip', ['link', 'set', name, 'master', bridge])
  await run('ip', ['link', 'set', name, 'up'])
}
async function removeTap(name: string): Promise<void> {
  await run('ip', ['link', 'del', name]).catch(() => {})
}

async function main(): Promise<void> {
  if (!cfg) return
  await mkdir(cfg.dataDir, { recursive: true })
  const peers = new Map<NodeId, PeerAddress>()
  for (const r of cfg.replicas) if (r.id !== cfg.id) peers.set(r.id, { host: r.host, port: r.consensusPort })
  const ROLE = { voter: MemberRole.Voter, witness: MemberRole.Witness, learner: MemberRole.Learner }
  const membership: Membership = { members: cfg.bootstrap.map((b) => ({ id: b.id, role: ROLE[b.role] })) }

  // --- the VM first: a voter joins the election only once its guest serves redis ---
  let vm: QemuVm | undefined
  let hasher: PageHasher | undefined
  let vmConfig: VmConfig | undefined
  const vs = cfg.vm
  let tapSeq = 0
  const tapOf = new Map<QemuProcess, string>()
  if (vs) {
    vmConfig = {
      name: vs.name,
      boot: { kernel: vs.kernel, initrd: vs.initrd, append: guestKernelAppend({ ip: vs.ip }) },
      memoryMiB: vs.memoryMiB,
      cpus: 1,
      ramPath: vs.ramPath,
      nic: { kind: 'tap', ifname: vs.tap, redirectors: true },
    }
    const proc = await launch(vmConfig)
    tapOf.set(proc, vs.tap)
    cleanups.push(() => proc.stop({ removeRam: true }))
    logger.info('QEMU started, waiting for the guest', { pid: proc.pid, tap: vs.tap })
    await proc.waitForSerial(/PLOVER-GUEST-READY/, 300_000)
    logger.info('guest ready (redis answers inside)', { pid: proc.pid })
    const base = vmConfig
    // One tap per QEMU: a standby cannot open the tap the running backup QEMU holds.
    const standbys = new StandbyPool({
      spawn: async (seq) => {
        const tap = `${vs.tapPrefix}r${cfg.id}${(tapSeq++).toString(36)}`
        await addStandbyTap(tap, vs.bridge)
        try {
          const p = await launch(
            standbyConfig(base, { name: `${vs.name}-sb${seq}`, ramPath: vs.ramPath, tapIfname: tap }),
          )
          tapOf.set(p, tap)
          return p
        } catch (err) {
          await removeTap(tap)
          throw err
        }
      },
    })
    cleanups.push(async () => {
      await standbys.close()
      for (const tap of tapOf.values()) await removeTap(tap)
    })
    const h = new PageHasher({ threads: 1 })
    hasher = h
    cleanups.push(() => h.close())
    vm = await QemuVm.open({ process: proc, hasher: h, standbys, removeRamOnClose: true })
    cleanups.push(() => vm!.close())
    vm.host.on('swapped', (next, previous) => {
      logger.debug('device state loaded into a fresh QEMU', { pid: next.pid, previous: previous.pid })
      const tap = tapOf.get(previous)
      tapOf.delete(previous)
      if (tap) void previous.exited.then(() => removeTap(tap))
    })
    vm.on('exit', (info) => {
      logger.error('QEMU exited', { ...info })
      event('fatal', `QEMU exited: ${info.reason}`)
      void shutdown(1)
    })
    event('vm-ready', String(proc.pid))
  }

  // --- consensus ---
  const replica = await Replica.open({
    id: cfg.id,
    dir: `${cfg.dataDir}/consensus`,
    listen: { host: me.host, port: me.consensusPort },
    peers,
    membership,
    clusterKey: Buffer.from(cfg.clusterKeyHex, 'hex'),
    tickMs: cfg.tickMs,
    electionTicks: cfg.electionTicks,
    preVote: true,
    checkQuorum: true,
  })
  cleanups.push(() => replica.close())
  const log = new ConsensusOrderedLog(replica)
  cleanups.push(async () => log.detach())
  replica.on('error', (err) => {
    logger.error('consensus replica stopped', { error: err })
    void shutdown(1)
  })
  replica.on('leader', (leader, term) => logger.info('leader changed', { leader, term }))
  const ROLE_NAME = ['voter', 'witness', 'learner']
  const members = () => replica.membership.members.map((m) => `${m.id}:${ROLE_NAME[m.role]}`).join(' ')
  // Membership changes from the orchestrator (leader only), like replicated-kv's /admin/membership.
  process.on('message', (m: MembershipRequest) => {
    if (m?.type !== 'membership') return
    const id = (m.add ?? m.remove)!
    const addr = cfg.replicas.find((r) => r.id === id)
    const role =
      m.role === 'learner'
        ? MemberRole.Learner
        : addr?.role === 'witness'
          ? MemberRole.Witness
          : MemberRole.Voter
    const type = m.add !== undefined ? ConfChangeType.AddMember : ConfChangeType.RemoveMember
    replica.proposeConfChange({ type, id, role }).then(
      (index) => {
        logger.info('membership changed', { ...m, index, membership: members() })
        send({ type: 'membership-result', id: cfg.id, seq: m.seq, ok: true })
      },
      (err: Error) =>
        send({ type: 'membership-result', id: cfg.id, seq: m.seq, ok: false, error: err.message }),
    )
  })
  logger.info('consensus replica open', { role: replica.role, term: replica.term })

  if (!vm || !vs || !hasher) {
    const timer = setInterval(() => {
      send({
        type: 'status',
        id: cfg.id,
        pid: process.pid,
        consensusRole: replica.role,
        leader: replica.leader,
        term: replica.term,
        commitIndex: replica.commitIndex,
        members: members(),
      })
    }, 200)
    cleanups.push(async () => clearInterval(timer))
    return
  }

  // --- VM replica ---
  const qvm = vm
  let sawInput = false
  log.on('apply', (r) => {
    if (r.kind === LogRecordKind.Input) sawInput = true
  })
  const vr = new VmReplica({
    log,
    vm: qvm,
    tracker: qvm.dirty,
    hasher,
    role: 'backup',
    needFull: true,
    ...(cfg.syncMode ? { mode: cfg.syncMode } : {}),
    quietMaxMs: 50,
    // TCG guests on a loaded 2-core host: a full sync of the RAM file takes seconds.
    peerTimeoutMs: 60_000,
    followLeadership: false,
  })
  cleanups.push(() => vr.close())
  let inputFrames = 0
  let inputBytes = 0
  let released = 0
  let ignored = 0
  let syncs = 0
  let fullSyncs = 0
  let failures = 0
  let lastPauseMs = 0
  let lastIdentical = 0
  qvm.host.on('net-frame', (f) => {
    // Only the primary's tap feeds the log; a backup's tap sees the bridge's floods: ignored.
    if (vr.role === 'primary' && log.isLeader) {
      inputFrames++
      inputBytes += f.length
      vr.pushInput(f)
    } else ignored++
  })
  vr.on('release', (f) => {
    if (!log.isLeader) return // belt and braces: only the leader's guest talks to clients
    released++
    qvm.frames?.toNet(f).catch(() => {})
  })
  vr.on('sync-completed', (rep: SyncReport) => {
    if (rep.side !== 'primary') return
    syncs++
    if (rep.mode === SyncMode.Full) fullSyncs++
    lastPauseMs = rep.pauseMs
    lastIdentical = rep.identicalPct
    if (cfg.reportSyncs)
      send({
        type: 'sync-report',
        id: cfg.id,
        at: Date.now(),
        mode: SyncMode[rep.mode] ?? String(rep.mode),
        dirtyPages: rep.dirtyPages,
        peerDirtyPages: rep.peerDirtyPages,
        unionPages: rep.unionPages,
        identicalPages: rep.identicalPages,
        identicalPct: rep.identicalPct,
        divergentPages: rep.divergentPages,
        bytesSent: rep.bytesSent,
        bytesReceived: rep.bytesReceived,
        deviceStateBytes: rep.deviceStateBytes,
        pauseMs: rep.pauseMs,
        totalMs: rep.totalMs,
        hashMs: rep.hashMs,
      })
    logger.debug('sync completed', { ...rep })
    if (rep.mode === SyncMode.Full)
      logger.info('full sync completed', { pauseMs: rep.pauseMs, pages: rep.unionPages })
  })
  vr.on('sync-failed', (f) => {
    if (f.side === 'primary') failures++
    logger[f.error.name === 'SyncAbortedError' ? 'debug' : 'warn']('sync failed', {
      side: f.side,
      epoch: f.epoch,
      reason: f.reason,
    })
  })
  vr.on('unprotected', (reason) => {
    logger.warn('outputs unprotected (no synced backup)', { reason })
    event('unprotected', reason)
  })
  vr.on('protected', () => {
    logger.info('outputs protected: a synced backup exists')
    event('protected')
  })
  vr.on('fault', (e) => logger.error('input delivery fault: VM refused a frame', { error: e }))

  // --- sync links: the backup dials the leader ---
  const links = new SyncLinks({
    host: me.host,
    port: me.syncPort!,
    psk: Buffer.from(cfg.clusterKeyHex, 'hex'),
    logger,
    isLeader: () => log.isLeader,
    accepting: () => log.isLeader && vr.role === 'primary',
    leaderAddress: () => {
      const leader = cfg.replicas.find((r) => r.id === replica.leader && r.id !== cfg.id)
      return leader?.syncPort ? { id: leader.id, host: leader.host, port: leader.syncPort } : undefined
    },
    onLink: (link) => vr.attachLink(link),
  })
  await links.listen()
  cleanups.push(() => links.close())
  replica.on('leader', () => links.refresh())

  // --- idle monitor: syncs when the QEMU process is idle, at the latest every maxIntervalMs ---
  const monitor = new IdleMonitor({
    cpu: new FollowingCpuProbe(() => qvm.process.pid),
    output: {
      heldBytes: () => vr.guard.stats().heldBytes,
      oldestHeldAgeMs: () => vr.guard.stats().oldestHeldAgeMs,
      framesOut: () => vr.guard.stats().emittedFrames,
    },
    periodMs: cfg.sync.periodMs,
    policy: {
      maxIntervalMs: cfg.sync.maxIntervalMs,
      minIntervalMs: cfg.sync.minIntervalMs,
      maxHeldAgeMs: cfg.sync.maxHeldAgeMs,
    },
    calibration: { windowMs: 1000, minIntervals: 10 },
  })
  cleanups.push(async () => monitor.close())
  let syncing = false
  const backupCaughtUp = () => {
    const st = replica.status()
    if (st.role !== 'leader') return false
    const vmMembers = new Set(
      st.membership.members.filter((m) => m.role !== MemberRole.Witness).map((m) => m.id),
    )
    return st.progress.some(
      (p) =>
        p.id !== cfg.id &&
        vmMembers.has(p.id) &&
        p.state === 'replicate' &&
        p.match >= st.lastIndex - CAUGHT_UP_SLACK,
    )
  }
  const syncDue = () => {
    if (syncing || !(vr.primary?.hasBackup && backupCaughtUp())) {
      monitor.syncCompleted()
      return
    }
    syncing = true
    monitor.syncStarted()
    vr.requestSync().catch(() => syncOver())
  }
  monitor.on('sync-due', syncDue)
  const syncOver = () => {
    if (!syncing) return
    syncing = false
    monitor.syncCompleted()
  }
  vr.on('sync-completed', (r) => r.side === 'primary' && syncOver())
  vr.on('sync-failed', (f) => f.side === 'primary' && syncOver())
  vr.on('sync-skipped', syncOver)
  const fixedMs = cfg.sync.fixedIntervalMs
  if (fixedMs) {
    // Benchmarks: a fixed sync interval instead of the idle monitor's verdicts.
    const fixed = setInterval(syncDue, fixedMs)
    cleanups.push(async () => clearInterval(fixed))
  } else monitor.start()

  // --- leadership = primary ---
  const onLeadership = (isLeader: boolean) => {
    syncOver()
    if (isLeader && vr.role !== 'primary') {
      // A VM that never had its full sync may lead only a log that never carried an input.
      if (!vr.trusted && sawInput) {
        logger.error('leader with an untrusted VM: refusing to act as primary')
        return
      }
      vr.promote({ trusted: !sawInput })
      logger.info('promoted to primary: continuing from this VM state', { trusted: vr.trusted })
      event('promoted', String(qvm.process.pid))
    } else if (!isLeader && vr.role === 'primary') {
      vr.demote()
      logger.warn('lost leadership: demoted to backup, held outputs dropped')
      event('demoted')
    }
    links.refresh()
  }
  log.on('leadership', onLeadership)
  if (log.isLeader) onLeadership(true)

  const timer = setInterval(() => {
    const g = vr.guard.stats()
    send({
      type: 'status',
      id: cfg.id,
      pid: process.pid,
      consensusRole: replica.role,
      leader: replica.leader,
      term: replica.term,
      commitIndex: replica.commitIndex,
      members: members(),
      vm: {
        role: vr.role,
        trusted: vr.trusted,
        protected: g.isProtected,
        hasBackup: vr.primary?.hasBackup ?? false,
        qemuPid: qvm.process.pid,
        syncs,
        fullSyncs,
        syncFailures: failures,
        lastPauseMs,
        lastIdenticalPercent: lastIdentical,
        inputFrames,
        releasedFrames: released,
        discardedOwnTapFrames: ignored,
        heldFrames: g.heldFrames,
        inputBytes,
      },
    })
  }, 200)
  cleanups.push(async () => clearInterval(timer))
}

main().catch((err: Error) => {
  // Stopped while the guest was still booting (SIGTERM): QEMU's exit is expected then.
  if (closing) return
  logger.error('failed to start', { error: err, stack: err.stack })
  event('fatal', err.message)
  void shutdown(1)
})
