// The replicas' network at a chosen rate, as between hosts: with --link-mbit the whole bench runs
// in a private network namespace whose loopback — every replica-to-replica connection, sync
// links and consensus alike — is shaped by a token bucket (tbf). The bridge, taps and the client
// namespace are made inside it as usual; client traffic never crosses loopback, so the
// unreplicated anchors are not shaped. The namespace and its shaping go away with the process:
// nothing is left on the host, however the bench ends. Loopback carries both directions on one
// device, so the rate is shared by the pages one way and the hashes and acks the other (a real
// full-duplex link gives each direction its own).
import { spawn, spawnSync } from 'node:child_process'

const SHAPED_ENV = 'PLOVER_E2E_LINK_SHAPED'

/** True when this process is the re-executed one, inside the shaped namespace. */
export function insideShapedNamespace(): boolean {
  return process.env[SHAPED_ENV] === '1'
}

/** Runs this same command again inside a new network namespace; resolves with its exit code. */
export function reexecShaped(): Promise<number> {
  const child = spawn(
    'unshare',
    // --mount: a sysfs of our own (below), so /sys/class/net lists this namespace's interfaces.
    ['--net', '--mount', '--', process.execPath, ...process.execArgv, ...process.argv.slice(1)],
    {
      stdio: 'inherit',
      env: { ...process.env, [SHAPED_ENV]: '1' },
    },
  )
  return new Promise((resolve, reject) => {
    child.once('error', (err) =>
      reject(new Error(`unshare --net --mount failed (root needed): ${err.message}`)),
    )
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)))
  })
}

/**
 * In the private namespaces: mounts a sysfs that shows this network namespace (the replicas'
 * preflight checks /sys/class/net), brings loopback up and limits it to `mbit` Mbit/s.
 */
export function shapeLoopback(mbit: number): void {
  run('mount', ['-t', 'sysfs', 'sysfs', '/sys'])
  run('ip', ['link', 'set', 'lo', 'up'])
  // burst: above loopback's 64 KiB GSO segments; latency: a queue of at most 20 ms at the rate.
  run('tc', [
    'qdisc',
    'add',
    'dev',
    'lo',
    'root',
    'tbf',
    'rate',
    `${mbit}mbit`,
    'burst',
    '256kb',
    'latency',
    '20ms',
  ])
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')}: ${(r.stderr || r.error?.message || '').trim()}`)
}
