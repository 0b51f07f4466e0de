// Re-protection, the operator's procedure after losing a VM replica (docs/operations.md): remove
// the dead member, start the replacement (a spare, or the dead replica on its old data
// directory) and add it as a learner — it cannot campaign while its VM is untrusted. Its full
// sync protects the primary's outputs again, and the leader then makes it a voter by itself
// (vmsync's LearnerPromotion); this waits for both.
import type { MemberKind } from '../config/replica-config.js'
import type { DemoCluster, ReplicaStatus } from './cluster.js'
import { httpPost } from './metrics-scrape.js'
import { sleep, until } from './until.js'

export interface Reprotection {
  /** The replacement started -> the primary's outputs protected again (ms). */
  readonly ms: number
  /** The membership after the replacement became a voter ("id:role ..."). */
  readonly membership: string
}

export interface ReprotectSteps {
  /** Called after the removal, just before the replacement starts (with the membership then). */
  readonly onRemoved?: (membership: string) => void
  readonly timeoutMs?: number
}

export async function reprotect(
  cluster: DemoCluster,
  primary: number,
  gone: number,
  replacement: number,
  steps: ReprotectSteps = {},
): Promise<Reprotection> {
  const admin = cluster.procs.get(primary)!.addr.metricsPort
  await retry(() => httpPost(admin, '/admin/membership', { remove: gone }, cluster.adminToken))
  const after = (await cluster.procs.get(primary)!.status()) as ReplicaStatus
  steps.onRemoved?.(after.membership ?? '')
  const bootstrap = [...parseMembership(after.membership), { id: replacement, role: 'learner' as const }]
  const startedAt = Date.now()
  cluster.start(replacement, bootstrap)
  await retry(() =>
    httpPost(admin, '/admin/membership', { add: replacement, role: 'learner' }, cluster.adminToken),
  )
  await until(`replica ${replacement} to complete a full sync`, steps.timeoutMs ?? 30_000, async () => {
    const r = cluster.procs.get(replacement)!
    if (r.exit) throw new Error(`replica ${replacement} exited:\n${r.logTail()}`)
    const l = await cluster.procs.get(primary)!.status()
    return l?.vm?.protected && l.vm.hasBackup ? l : undefined
  })
  const ms = Date.now() - startedAt
  const done = await until(
    `replica ${replacement} to become a voter`,
    steps.timeoutMs ?? 30_000,
    async () => {
      const l = await cluster.procs.get(primary)!.status()
      return l?.membership?.split(' ').includes(`${replacement}:voter`) ? l : undefined
    },
  )
  return { ms, membership: done.membership ?? '' }
}

export function parseMembership(s: string | undefined): { id: number; role: MemberKind }[] {
  return (s ?? '')
    .split(' ')
    .filter(Boolean)
    .map((x) => {
      const [id, role] = x.split(':')
      return { id: Number(id), role: role as MemberKind }
    })
}

/** Membership changes can be refused while a previous one is pending: retry briefly. */
async function retry<T>(f: () => Promise<T>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      return await f()
    } catch (err) {
      if (Date.now() > deadline) throw err
      await sleep(100)
    }
  }
}
