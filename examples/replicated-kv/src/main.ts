// `npm run demo`: Plover protecting a key-value service on the embedded simulated VM.
// Three replica processes on loopback, a client, SIGKILL of the primary midway, failover,
// re-protection by a spare (or, with --restart, by the killed replica restarted on its old data
// directory), and the read-back of every acknowledged write.
// Exit code: 0 when no acknowledged write was lost, 1 otherwise (or on any failure), 130 on Ctrl-C.
import type { DemoCluster } from './demo/cluster.js'
import { runDemo } from './demo/run-demo.js'
import { StatusLine } from './demo/status-line.js'
import { formatSummary } from './demo/summary.js'

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback
  if (!Number.isFinite(v) || v <= 0) {
    process.stderr.write(`--${name} must be a positive number\n`)
    process.exit(2)
  }
  return v
}

let cluster: DemoCluster | undefined
let interrupting = false
const interrupted = (signal: string) => {
  if (interrupting) return
  interrupting = true
  process.stdout.write(`\n${signal}: stopping replicas and removing ${cluster?.root ?? 'temp files'}\n`)
  // The replicas got the same Ctrl-C (same process group) and are shutting down; abort() waits
  // briefly for them, SIGKILLs what is left, and deletes the temp directory.
  const done = () => process.exit(130)
  if (cluster) cluster.abort().then(done, done)
  else done()
}
process.on('SIGINT', () => interrupted('SIGINT'))
process.on('SIGTERM', () => interrupted('SIGTERM'))

const status = new StatusLine()
try {
  const result = await runDemo({
    workloadMs: arg('seconds', 20) * 1000,
    workers: arg('workers', 32),
    vmPages: arg('pages', 16384),
    rejoin: process.argv.includes('--restart') ? 'restart' : 'spare',
    // Below the replicas' default (8192 records), so a half-minute demo shows its logs compacted.
    compactAfterEntries: 1024,
    status,
    onCluster: (c) => {
      cluster = c
    },
  })
  status.say('')
  status.say(formatSummary(result))
  if (result.workloadErrors.length > 0)
    status.say(`client errors (first ${result.workloadErrors.length}): ${result.workloadErrors.join('; ')}`)
  if (result.lost.length > 0) {
    status.say(
      `FAILED: ${result.lost.length} acknowledged writes lost, e.g. ${result.lost.slice(0, 5).join(', ')}`,
    )
    process.exit(1)
  }
  if (result.workload.staleReads > 0 || result.workload.failed > 0) {
    status.say(
      `FAILED: ${result.workload.staleReads} stale reads, ${result.workload.failed} failed operations`,
    )
    process.exit(1)
  }
  status.say('OK: every acknowledged write survived the loss of the primary.')
  process.exit(0)
} catch (err) {
  status.say(`demo failed: ${(err as Error).message}`)
  process.exit(1)
}
