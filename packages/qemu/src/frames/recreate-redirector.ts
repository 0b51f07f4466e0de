// An indev filter-redirector stops reading its chardev once Node's connection dropped, even after
// Node reconnects (DESIGN §2). The cure is to delete and re-add the filter object over QMP, at the
// same place in the netdev's filter list: the order of the four filters decides where frames go.
import { type RedirectorSpec, redirectorObjectAddArgs } from '../launch/redirectors.js'
import { NETDEV_ID } from '../launch/vm-config.js'
import type { QmpClient } from '../qmp/client.js'

/** Where `spec` must be re-inserted, relative to its neighbours in `ordered` (the launch order). */
export function placementOf(
  ordered: readonly RedirectorSpec[],
  spec: RedirectorSpec,
): { position: string; insert: 'before' | 'behind' } {
  const i = ordered.findIndex((s) => s.objectId === spec.objectId)
  if (i < 0) throw new Error(`redirector ${spec.objectId} is not in the filter list`)
  if (i > 0) return { position: `id=${ordered[i - 1].objectId}`, insert: 'behind' }
  if (ordered.length > 1) return { position: `id=${ordered[1].objectId}`, insert: 'before' }
  return { position: 'head', insert: 'behind' }
}

export async function recreateRedirector(
  qmp: Pick<QmpClient, 'objectDel' | 'objectAdd'>,
  ordered: readonly RedirectorSpec[],
  spec: RedirectorSpec,
  netdevId: string = NETDEV_ID,
): Promise<void> {
  await qmp.objectDel(spec.objectId)
  await qmp.objectAdd(redirectorObjectAddArgs(spec, netdevId, placementOf(ordered, spec)))
}
