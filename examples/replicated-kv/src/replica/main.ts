// Entry point of one replica process:
//   node --import tsx src/replica/main.ts --config replica-1.json
// Bad configuration -> one line on stderr, exit 78; a damaged log in the data directory -> one
// line, exit 65 (nothing truncated). SIGTERM/SIGINT -> clean shutdown, exit 0 (a primary
// first hands leadership to its synced backup);
// a shutdown that takes longer than shutdownTimeoutMs (a stuck disk, say) -> one line, exit 1.
import { StorageError } from '@plover/consensus'
import { CONFIG_EXIT_CODE, ConfigError, DATA_EXIT_CODE } from '../config/config-error.js'
import { loadReplicaConfig } from '../config/replica-config.js'
import { jsonLogger } from '../runtime/logger.js'
import { ReplicaNode } from './replica-node.js'

function die(message: string, code: number): never {
  process.stderr.write(`plover replica: ${message}\n`)
  process.exit(code)
}

async function main(): Promise<void> {
  let cfg: ReturnType<typeof loadReplicaConfig>
  try {
    cfg = loadReplicaConfig(process.argv.slice(2))
  } catch (err) {
    if (err instanceof ConfigError) die(err.message, CONFIG_EXIT_CODE)
    throw err
  }
  const level = process.env.PLOVER_LOG_LEVEL
  const logger = jsonLogger(
    { replica: cfg.id },
    { level: level === 'debug' || level === 'warn' || level === 'error' ? level : 'info' },
  )
  let node: ReplicaNode
  try {
    node = await ReplicaNode.start(cfg, logger, (err) => {
      logger.error('fatal, exiting', { error: err })
      process.exit(1)
    })
  } catch (err) {
    if (err instanceof ConfigError) die(err.message, CONFIG_EXIT_CODE)
    if (err instanceof StorageError && err.kind === 'corrupt')
      die(
        `damaged log in ${cfg.dataDir}/consensus: ${err.message} — move the data directory aside and re-add this replica as a learner (docs/operations.md)`,
        DATA_EXIT_CODE,
      )
    die(`failed to start: ${(err as Error).message}`, 1)
  }
  logger.info('replica started', { pid: process.pid })
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    logger.info('shutting down', { signal })
    const limitMs = cfg.shutdownTimeoutMs
    const force = setTimeout(() => die(`shutdown took longer than ${limitMs / 1000} s`, 1), limitMs)
    force.unref()
    // A planned stop (not the supervisor's death) hands primacy over first, within a quarter of
    // the shutdown budget (2 s at most: a live, caught-up backup takes over in one round trip).
    const handOver =
      signal === 'supervisor gone' ? Promise.resolve() : node.handOver(Math.min(2000, limitMs / 4))
    handOver
      .then(() => node.close())
      .then(
        () => {
          logger.info('stopped cleanly')
          process.exit(0)
        },
        (err: Error) => die(`shutdown failed: ${err.message}`, 1),
      )
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  // Started by a supervisor over IPC (the demo): never outlive it, even if it is SIGKILLed.
  if (process.send) process.on('disconnect', () => stop('supervisor gone'))
}

main().catch((err: Error) => die(`unexpected error: ${err.message}`, 1))
