// Entry point of one replica process of the QEMU example:
//   node --import tsx src/replica/main.ts --config replica-1.json [--id N] [--data-dir DIR]
//                                         [--metrics-port N] [--metrics-host HOST]
// (without --config: the same JSON in $PLOVER_QR_CONFIG). Runs standalone, or under the
// orchestrator (src/demo/run.ts) with an IPC channel: then it sends status (every 200 ms) and
// events, takes membership changes, and stops when the channel closes.
//
// Configuration and host problems are found before anything starts (QEMU in particular): one line
// on stderr and an exit code (config-error.ts): 78 bad configuration / missing image / port in
// use, 77 no permission (a voter without root or CAP_NET_ADMIN), 69 missing program, 65 a damaged
// log in the data directory, 1 any other startup failure. SIGTERM/SIGINT: a primary first hands
// leadership to its synced backup, then clean shutdown (QEMU stopped, RAM file and standby taps
// removed, HTTP server closed), exit 0; after `shutdownTimeoutMs` (10 s) it exits 1 with a message.
import { parseMembershipRequest } from '@plover/vmsync'
import type { MembershipMessage, ReplicaMessage } from './config.js'
import { ConfigError, EXIT } from './config-error.js'
import { loadReplicaProcessConfig, USAGE, wantsHelp } from './load-config.js'
import { jsonLogger } from './logger.js'
import { checkHost, checkLog, checkPorts, checkPrivileges, prepareDataDir } from './preflight.js'

function die(message: string, code: number): never {
  process.stderr.write(`qemu-redis replica: ${message}\n`)
  process.exit(code)
}

/**
 * One line of an error. QEMU's launch errors carry its stderr and serial tail on further lines:
 * the first line of its stderr is the reason (e.g. "could not configure /dev/net/tun").
 */
function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err)
  let line = msg.split('\n').find((l) => l.trim() !== '') ?? msg
  const qemu = /\nstderr: *(\S.*)/.exec(msg)?.[1]
  if (qemu) line += `: ${qemu.trim()}`
  return line.length > 400 ? `${line.slice(0, 400)}…` : line
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2)
  if (wantsHelp(argv)) {
    process.stdout.write(`${USAGE}\n`)
    process.exit(EXIT.ok)
  }
  let cfg: ReturnType<typeof loadReplicaProcessConfig>
  try {
    cfg = loadReplicaProcessConfig(argv)
    checkPrivileges(cfg)
    checkHost(cfg)
    prepareDataDir(cfg)
    await checkLog(cfg)
    await checkPorts(cfg)
  } catch (err) {
    if (err instanceof ConfigError) die(err.message, err.exitCode)
    throw err
  }
  const level = process.env.PLOVER_LOG_LEVEL
  const logger = jsonLogger(
    { replica: cfg.id },
    { level: level === 'debug' || level === 'warn' || level === 'error' ? level : 'info' },
  )
  const ipc = typeof process.send === 'function'
  const send = (m: ReplicaMessage) => {
    if (process.connected) process.send?.(m)
  }
  // QEMU, consensus and vmsync are loaded only once the checks passed.
  const { ReplicaProcess } = await import('./replica-process.js')
  let stopping = false
  let statusTimer: NodeJS.Timeout | undefined
  const finish = (code: number, message?: string, handOver = false) => {
    stopping = true
    clearInterval(statusTimer)
    const limit = cfg.shutdownTimeoutMs
    const force = setTimeout(() => die(`shutdown took longer than ${limit / 1000} s`, EXIT.failure), limit)
    force.unref()
    // A planned stop hands primacy to the synced backup first, within a quarter of the shutdown
    // budget (2 s at most: a live, caught-up backup takes over in one round trip).
    const handedOver = handOver ? node.handOver(Math.min(2000, limit / 4)) : Promise.resolve()
    handedOver
      .then(() => node.close())
      .then(() => {
        if (code === EXIT.ok) logger.info('stopped cleanly')
        if (message) die(message, code)
        process.exit(code)
      })
  }
  const stop = (why: string) => {
    if (stopping) return
    logger.info('shutting down', { signal: why })
    finish(EXIT.ok, undefined, why === 'SIGTERM' || why === 'SIGINT')
  }
  const fail = (reason: string) => {
    if (stopping) return
    logger.error('fatal, exiting', { reason })
    send({ type: 'event', id: cfg.id, name: 'fatal', at: Date.now(), detail: reason })
    finish(EXIT.failure, reason)
  }
  const node = new ReplicaProcess(cfg, logger, { send, fatal: fail })
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('uncaughtException', (err) => {
    logger.error('uncaught exception', { error: err, stack: err.stack })
    fail(`uncaught exception: ${firstLine(err)}`)
  })
  if (ipc) {
    // Under the orchestrator: never outlive it, even if it is SIGKILLed.
    process.on('disconnect', () => stop('orchestrator gone'))
    // Membership changes from the orchestrator (leader only), like POST /admin/membership.
    process.on('message', (m: MembershipMessage) => {
      if (m?.type !== 'membership') return
      const { type: _, seq: __, ...change } = m
      Promise.resolve()
        .then(() => node.changeMembership(parseMembershipRequest(change)))
        .then(
          () => send({ type: 'membership-result', id: cfg.id, seq: m.seq, ok: true }),
          (err: Error) =>
            send({ type: 'membership-result', id: cfg.id, seq: m.seq, ok: false, error: err.message }),
        )
    })
  }

  try {
    await node.start()
  } catch (err) {
    // Stopped while starting (SIGTERM while the guest boots): QEMU's exit is expected then.
    if (stopping) return
    stopping = true
    await node.close()
    if (err instanceof ConfigError) die(err.message, err.exitCode) // e.g. a port taken meanwhile
    logger.error('failed to start', { error: err, stack: (err as Error).stack })
    send({ type: 'event', id: cfg.id, name: 'fatal', at: Date.now(), detail: firstLine(err) })
    die(`failed to start: ${firstLine(err)}`, EXIT.failure)
  }
  logger.info('replica started', {
    pid: process.pid,
    role: cfg.vm ? 'voter' : 'witness',
    ...(cfg.metrics ? { metrics: `http://${cfg.metrics.host}:${cfg.metrics.port}/metrics` } : {}),
    ipc,
  })
  if (ipc && !stopping)
    statusTimer = setInterval(() => {
      const s = node.status()
      if (s) send(s)
    }, 200)
}

main().catch((err: unknown) => die(`unexpected error: ${firstLine(err)}`, EXIT.failure))
