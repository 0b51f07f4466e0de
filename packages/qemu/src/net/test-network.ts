import { type ChildProcess, spawn } from 'node:child_process'
import { type CommandResult, type RunCommandOptions, runCommand } from '../launch/run-command.js'
import { ip, listLinks, listNamespaces } from './ip.js'
import { checkIfname, DEFAULT_NET_PREFIX, networkId, ownerPid, pidAlive } from './names.js'

export interface TestNetworkOptions {
  /** Name prefix of every device/namespace (default `plv`). */
  readonly prefix?: string
  /** First three octets of the private /24 used inside the bridge only (default `10.77.0`). */
  readonly subnet?: string
  /** Host part of the client's address in its namespace (default 2). */
  readonly clientHost?: number
}

let sequence = 0

/**
 * An isolated L2 network for tests and examples: a Linux bridge (no host address: nothing on it
 * can reach the host or beyond), tap devices for the replicas, and a client network namespace
 * whose veth sits on the bridge with an address in the private /24. A client program run with
 * `execInNamespace` talks TCP to the guest as to a real host.
 *
 * Always `dispose()` (idempotent). `create` first removes leftovers of crashed earlier runs whose
 * owner process is dead; a failed `create` removes what it made.
 */
export class TestNetwork {
  readonly bridge: string
  readonly namespace: string
  /** The client's address without prefix length, e.g. `10.77.0.2`. */
  readonly clientIp: string
  private readonly vethHost: string
  private readonly vethClient: string
  private readonly taps = new Set<string>()
  private tapSeq = 0
  private disposed: Promise<void> | undefined

  private constructor(
    readonly id: string,
    readonly subnet: string,
    clientHost: number,
  ) {
    this.bridge = checkIfname(`${id}br`)
    this.vethHost = checkIfname(`${id}vh`)
    this.vethClient = checkIfname(`${id}vc`)
    this.namespace = `${id}-client`
    this.clientIp = `${subnet}.${clientHost}`
  }

  static async create(options: TestNetworkOptions = {}): Promise<TestNetwork> {
    const prefix = options.prefix ?? DEFAULT_NET_PREFIX
    const subnet = options.subnet ?? '10.77.0'
    if (!/^\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(subnet)) throw new Error(`subnet must be three octets: ${subnet}`)
    await TestNetwork.cleanupLeftovers(prefix).catch(() => [])
    sequence += 1
    const net = new TestNetwork(networkId(prefix, process.pid, sequence), subnet, options.clientHost ?? 2)
    try {
      await net.setUp()
      return net
    } catch (e) {
      await net.dispose().catch(() => {})
      throw e
    }
  }

  /** `A.B.C.<host>/24` for a guest's `plover.ip=`. */
  guestAddress(host = 10): string {
    return `${this.subnet}.${host}/24`
  }

  /** A new tap device on the bridge for a replica's `-netdev tap,ifname=`. */
  async addTap(): Promise<string> {
    if (this.disposed) throw new Error('TestNetwork disposed')
    const name = checkIfname(`${this.id}t${(this.tapSeq++).toString(36).padStart(2, '0')}`)
    this.taps.add(name)
    await ip('tuntap', 'add', 'dev', name, 'mode', 'tap')
    await ip('link', 'set', name, 'master', this.bridge)
    await ip('link', 'set', name, 'up')
    return name
  }

  async removeTap(name: string): Promise<void> {
    this.taps.delete(name)
    await ip('link', 'del', name).catch(() => {})
  }

  /** Runs a command inside the client namespace (e.g. `redis-cli -h 10.77.0.10 PING`). */
  execInNamespace(
    command: string,
    args: readonly string[],
    options: RunCommandOptions = {},
  ): Promise<CommandResult> {
    return runCommand('ip', ['netns', 'exec', this.namespace, command, ...args], options)
  }

  /** Starts a long-running command in the client namespace (e.g. `redis-benchmark`); caller owns it. */
  spawnInNamespace(command: string, args: readonly string[]): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.namespace, command, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
  }

  /** Every device and namespace name this network owns (for assertions). */
  get resourceNames(): { links: string[]; namespaces: string[] } {
    return { links: [this.bridge, this.vethHost, ...this.taps], namespaces: [this.namespace] }
  }

  /** Removes taps, veth, bridge and namespace. Idempotent; never throws for already-missing parts. */
  dispose(): Promise<void> {
    this.disposed ??= (async () => {
      for (const tap of [...this.taps]) await this.removeTap(tap)
      // WHY delete by prefix too: a tap whose creation failed half-way is not in `taps`.
      await removeMatching((name) => name.startsWith(this.id))
    })()
    return this.disposed
  }

  /**
   * Removes devices and namespaces named with `prefix` whose owner process is dead (a crashed
   * earlier run). Returns the removed names. Networks of live processes are left alone.
   */
  static cleanupLeftovers(prefix: string = DEFAULT_NET_PREFIX): Promise<string[]> {
    return removeMatching((name) => {
      const pid = ownerPid(prefix, name)
      return pid !== undefined && !pidAlive(pid)
    })
  }

  private async setUp(): Promise<void> {
    await ip('link', 'add', this.bridge, 'type', 'bridge')
    await ip('link', 'set', this.bridge, 'up')
    await ip('netns', 'add', this.namespace)
    await ip('link', 'add', this.vethHost, 'type', 'veth', 'peer', 'name', this.vethClient)
    await ip('link', 'set', this.vethClient, 'netns', this.namespace)
    await ip('link', 'set', this.vethHost, 'master', this.bridge)
    await ip('link', 'set', this.vethHost, 'up')
    await ip('-n', this.namespace, 'link', 'set', 'lo', 'up')
    await ip('-n', this.namespace, 'addr', 'add', `${this.clientIp}/24`, 'dev', this.vethClient)
    await ip('-n', this.namespace, 'link', 'set', this.vethClient, 'up')
  }
}

async function removeMatching(match: (name: string) => boolean): Promise<string[]> {
  const removed: string[] = []
  // Taps and veths before bridges: deleting a port first keeps `ip` quiet.
  const links = (await listLinks())
    .filter(match)
    .sort((a, b) => Number(a.endsWith('br')) - Number(b.endsWith('br')))
  for (const link of links) {
    if ((await ip('link', 'del', link).catch(() => undefined)) !== undefined) removed.push(link)
  }
  for (const ns of (await listNamespaces()).filter(match)) {
    // Deleting the namespace also deletes the veth end inside it.
    if ((await ip('netns', 'del', ns).catch(() => undefined)) !== undefined) removed.push(ns)
  }
  return removed
}
