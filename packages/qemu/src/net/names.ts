/**
 * Device names of a test network: `<prefix><pid:5 base36><seq:2 base36><role>`, e.g.
 * `plv0abcd01br`. WHY the owner pid in the name: leftovers of a crashed run can be told apart from
 * a network another test process is using right now (same prefix, live pid) — only dead owners'
 * devices are removed. Linux limits interface names to 15 bytes.
 */
export const DEFAULT_NET_PREFIX = 'plv'
const MAX_IFNAME = 15

export function networkId(prefix: string, pid: number, seq: number): string {
  return `${prefix}${pid.toString(36).padStart(5, '0')}${(seq % 1296).toString(36).padStart(2, '0')}`
}

/** Owner pid encoded in a device or namespace name of this prefix, or undefined if not ours. */
export function ownerPid(prefix: string, name: string): number | undefined {
  if (!name.startsWith(prefix)) return undefined
  const m = /^([0-9a-z]{5})[0-9a-z]{2}/.exec(name.slice(prefix.length))
  return m ? Number.parseInt(m[1], 36) : undefined
}

export function checkIfname(name: string): string {
  if (Buffer.byteLength(name) > MAX_IFNAME)
    throw new Error(`interface name too long (max ${MAX_IFNAME}): ${name}`)
  return name
}

/** True when a process with this pid exists (EPERM means it exists but isn't ours). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}
