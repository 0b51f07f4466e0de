// Host checks before the replica does anything (in particular before QEMU boots a guest for
// minutes): privileges for the taps, image files, network interfaces, programs, the data
// directory and its log, and ports. Each failure is a ConfigError with the exit code the
// operator's tooling can act on (config-error.ts); the entry point runs them in this order.
import { accessSync, constants, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs'
import net from 'node:net'
import { delimiter, dirname, join } from 'node:path'
import { StorageError, Wal } from '@plover/consensus'
import type { ReplicaProcessConfig } from './config.js'
import { ConfigError, EXIT } from './config-error.js'
import { self } from './load-config.js'

const CAP_NET_ADMIN = 12n

/** Effective capabilities of this process (/proc/self/status CapEff), undefined if unreadable. */
function effectiveCaps(): bigint | undefined {
  try {
    const m = /^CapEff:\s*([0-9a-fA-F]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))
    return m ? BigInt(`0x${m[1]}`) : undefined
  } catch {
    return undefined
  }
}

/**
 * A voter's QEMU opens a tap and its standbys get taps of their own (`ip tuntap add`): root or
 * CAP_NET_ADMIN, and /dev/net/tun. A witness needs neither.
 */
export function checkPrivileges(cfg: ReplicaProcessConfig): void {
  if (!cfg.vm) return
  const uid = process.getuid?.()
  const caps = effectiveCaps()
  const netAdmin = caps === undefined ? uid === 0 : ((caps >> CAP_NET_ADMIN) & 1n) === 1n
  if (!netAdmin)
    throw new ConfigError(
      `replica ${cfg.id} is a voter: its taps need root or CAP_NET_ADMIN (running as uid ${uid} without CAP_NET_ADMIN)`,
      EXIT.noPermission,
    )
  try {
    accessSync('/dev/net/tun', constants.R_OK | constants.W_OK)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new ConfigError(
      code === 'ENOENT'
        ? 'replica is a voter but /dev/net/tun does not exist (modprobe tun, or pass the device into the container)'
        : `replica is a voter but cannot open /dev/net/tun read-write (${code})`,
      EXIT.noPermission,
    )
  }
}

/** As the replica runs it: spawn() through PATH. */
function onPath(program: string): boolean {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean)
  for (const d of dirs) {
    try {
      accessSync(join(d, program), constants.X_OK)
      return true
    } catch {}
  }
  return false
}

/** Guest image files, the tap and bridge, the RAM file's directory, and the programs a voter runs. */
export function checkHost(cfg: ReplicaProcessConfig, sysClassNet = '/sys/class/net'): void {
  const vm = cfg.vm
  if (!vm) return
  for (const [field, path] of [
    ['vm.kernel', vm.kernel],
    ['vm.initrd', vm.initrd],
  ] as const) {
    let isFile = false
    try {
      isFile = statSync(path).isFile()
      accessSync(path, constants.R_OK)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT')
        throw new ConfigError(
          `${field}: image file ${path} does not exist (build the guest image: node packages/qemu/dist/guest/cli.js build)`,
        )
      throw new ConfigError(`${field}: cannot read image file ${path} (${code})`)
    }
    if (!isFile) throw new ConfigError(`${field}: ${path} is not a file`)
  }
  if (!existsSync(dirname(vm.ramPath)))
    throw new ConfigError(`vm.ramPath: directory ${dirname(vm.ramPath)} does not exist`)
  if (!existsSync(join(sysClassNet, vm.bridge, 'bridge')))
    throw new ConfigError(
      `vm.bridge: ${vm.bridge} is not a bridge on this host (ip link add ${vm.bridge} type bridge)`,
    )
  if (!existsSync(join(sysClassNet, vm.tap)))
    throw new ConfigError(
      `vm.tap: network interface ${vm.tap} does not exist (ip tuntap add dev ${vm.tap} mode tap; ip link set ${vm.tap} master ${vm.bridge} up)`,
    )
  for (const [program, pkg] of [
    ['qemu-system-x86_64', 'qemu-system-x86'],
    ['ip', 'iproute2'],
  ])
    if (!onPath(program))
      throw new ConfigError(`${program} not found on PATH (apt-get install ${pkg})`, EXIT.unavailable)
}

/** Creates the data directory (the WAL goes into `<dataDir>/consensus`). */
export function prepareDataDir(cfg: ReplicaProcessConfig): void {
  try {
    mkdirSync(cfg.dataDir, { recursive: true })
    accessSync(cfg.dataDir, constants.W_OK)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new ConfigError(
      `cannot use data directory ${cfg.dataDir}: ${code ?? (err as Error).message}`,
      code === 'EACCES' || code === 'EPERM' || code === 'EROFS' ? EXIT.noPermission : EXIT.config,
    )
  }
}

/**
 * Opens the consensus log once and closes it, so a damaged one is found before QEMU boots. A torn
 * tail (a crash mid-write) is cut here as at every open; corruption in the middle of the log is
 * refused with exit 65: nothing is truncated, and the operator replaces the member.
 */
export async function checkLog(cfg: ReplicaProcessConfig): Promise<void> {
  const dir = join(cfg.dataDir, 'consensus')
  try {
    await (await Wal.open(dir)).close()
  } catch (err) {
    if (!(err instanceof StorageError)) throw err
    if (err.kind === 'corrupt')
      throw new ConfigError(
        `damaged log in ${dir}: ${err.message} — move the data directory aside and re-add this replica as a learner (docs/operations.md)`,
        EXIT.dataError,
      )
    throw new ConfigError(`cannot open the log in ${dir}: ${err.message}`, EXIT.failure)
  }
}

/** Turns "address in use" and friends into one operator-readable line. */
export function bindError(err: unknown, what: string, host: string, port: number): unknown {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'EADDRINUSE') return new ConfigError(`${what} port ${port} on ${host} is already in use`)
  if (code === 'EACCES')
    return new ConfigError(`no permission to listen on ${what} port ${port} on ${host}`, EXIT.noPermission)
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return new ConfigError(`${what} address ${host} is not an address of this host`)
  return err
}

async function probe(what: string, host: string, port: number): Promise<void> {
  const s = net.createServer()
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject)
      s.listen({ port, host, exclusive: true }, () => resolve())
    })
  } catch (err) {
    throw bindError(err, what, host, port)
  } finally {
    await new Promise<void>((r) => s.close(() => r()))
  }
}

/**
 * Every port this replica will listen on is free now. The real binds come later (the consensus
 * port only once the guest serves redis, minutes later with TCG) and map errors the same way.
 */
export async function checkPorts(cfg: ReplicaProcessConfig): Promise<void> {
  const me = self(cfg)
  await probe('consensus', me.host, me.consensusPort)
  if (me.syncPort !== undefined) await probe('sync', me.host, me.syncPort)
  if (cfg.metrics) await probe('metrics', cfg.metrics.host, cfg.metrics.port)
}
