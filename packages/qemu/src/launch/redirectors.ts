import { join } from 'node:path'
import type { ObjectAddArgs } from '../qmp/types.js'
import type { RedirectorName } from './vm-config.js'

/** One filter-redirector: its QOM id, chardev, socket, netdev queue and which side Node is on. */
export interface RedirectorSpec {
  readonly name: RedirectorName
  /** QOM object id (`f_in_out`, …), for `object-del` / `position=id=…`. */
  readonly objectId: string
  readonly chardevId: string
  /** Unix socket QEMU listens on (server=on,wait=off); Node connects here. */
  readonly socketPath: string
  /** `tx` carries frames TO the guest, `rx` frames FROM the guest (QEMU's counter-intuitive names). */
  readonly queue: 'tx' | 'rx'
  /** `outdev`: QEMU writes frames to Node. `indev`: Node writes frames into QEMU. */
  readonly role: 'outdev' | 'indev'
  readonly vnetHdr: boolean
}

/**
 * The four redirectors in the one order that works (DESIGN §2; other orders loop frames forever):
 *   inOut  (tx, outdev)  frames from the network toward the guest → Node
 *   inIn   (tx, indev)   Node → the guest
 *   outIn  (rx, indev)   Node → the network (tap)
 *   outOut (rx, outdev)  frames the guest sends → Node
 */
const ORDER: ReadonlyArray<readonly [RedirectorName, string, 'tx' | 'rx', 'outdev' | 'indev']> = [
  ['inOut', 'in_out', 'tx', 'outdev'],
  ['inIn', 'in_in', 'tx', 'indev'],
  ['outIn', 'out_in', 'rx', 'indev'],
  ['outOut', 'out_out', 'rx', 'outdev'],
]

export function redirectorSpecs(runDir: string, vnetHdr = false): RedirectorSpec[] {
  return ORDER.map(([name, suffix, queue, role]) => ({
    name,
    objectId: `f_${suffix}`,
    chardevId: `red_${suffix}`,
    socketPath: join(runDir, `red-${suffix}.sock`),
    queue,
    role,
    vnetHdr,
  }))
}

/** `-chardev` value for a redirector socket. */
export function redirectorChardevArg(spec: RedirectorSpec): string {
  return `socket,id=${spec.chardevId},path=${spec.socketPath},server=on,wait=off`
}

/** QMP `object-add` arguments that (re)create a redirector; `position`/`insert` keep the order. */
export function redirectorObjectAddArgs(
  spec: RedirectorSpec,
  netdevId: string,
  placement?: { readonly position: string; readonly insert?: 'before' | 'behind' },
): ObjectAddArgs {
  return {
    'qom-type': 'filter-redirector',
    id: spec.objectId,
    netdev: netdevId,
    queue: spec.queue,
    [spec.role]: spec.chardevId,
    ...(spec.vnetHdr ? { vnet_hdr_support: true } : {}),
    ...(placement ?? {}),
  }
}

/** `-object` value for a redirector on the command line. */
export function redirectorObjectArg(spec: RedirectorSpec, netdevId: string): string {
  const vnet = spec.vnetHdr ? ',vnet_hdr_support=on' : ''
  return `filter-redirector,id=${spec.objectId},netdev=${netdevId},queue=${spec.queue},${spec.role}=${spec.chardevId}${vnet}`
}
