import type { NicConfig, VmConfig } from './vm-config.js'

export interface StandbyOverrides {
  /** The standby's name (its own run dir and sockets). */
  readonly name: string
  /** The RAM file the standby maps: the BACKUP's, so migration with x-ignore-shared lands there. */
  readonly ramPath: string
  readonly runDir?: string
  readonly serialLogPath?: string
  /**
   * Backend-only NIC changes (e.g. another tap: a tap device can be held by one QEMU at a time).
   * The guest-visible part (model, MAC, redirectors) is kept from the primary.
   */
  readonly tapIfname?: string
}

/**
 * Config of a standby for `primary`: the identical device set, its own RAM file, and
 * `-incoming defer` (start it in advance, then `migrate-incoming`). A standby serves one incoming
 * migration only: spawn a fresh one per sync.
 */
export function standbyConfig(primary: VmConfig, o: StandbyOverrides): VmConfig {
  let nic: NicConfig | undefined = primary.nic
  if (o.tapIfname !== undefined) {
    if (nic?.kind !== 'tap') throw new Error('tapIfname given but the primary NIC is not a tap')
    nic = { ...nic, ifname: o.tapIfname }
  }
  const { runDir: _r, serialLogPath: _s, ...rest } = primary
  return {
    ...rest,
    name: o.name,
    ramPath: o.ramPath,
    ...(o.runDir ? { runDir: o.runDir } : {}),
    ...(o.serialLogPath ? { serialLogPath: o.serialLogPath } : {}),
    ...(nic ? { nic } : {}),
    incoming: 'defer',
  }
}
