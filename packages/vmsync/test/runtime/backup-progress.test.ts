// vmBackupCaughtUp on a real consensus group (two voters and a witness): true on the leader while
// the other VM voter keeps up, false on a follower, and false once only the witness keeps up —
// a witness runs no VM, so it is never the backup a sync waits for.
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EntryType, MemberRole, type NodeId, Replica } from '@plover/consensus'
import t from 'tap'
import { CONSENSUS_WITNESS_ROLE, vmBackupCaughtUp } from '../../src/runtime/backup-progress.js'

async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as { port: number }).port
  await new Promise((r) => s.close(r))
  return port
}

async function until<T>(what: string, f: () => T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = f()
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`timed out: ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

t.test("the constant is consensus's MemberRole.Witness", async (t) => {
  t.equal(CONSENSUS_WITNESS_ROLE, MemberRole.Witness)
})

t.test('caught up: the other VM voter, never the witness', async (t) => {
  const ids: NodeId[] = [1, 2, 3]
  const ports = await Promise.all(ids.map(() => freePort()))
  const replicas = await Promise.all(
    ids.map((id) => {
      const dir = mkdtempSync(join(tmpdir(), `plover-progress-${id}-`))
      t.teardown(() => rmSync(dir, { recursive: true, force: true }))
      return Replica.open({
        id,
        dir,
        listen: { host: '127.0.0.1', port: ports[id - 1]! },
        peers: new Map(
          ids.filter((p) => p !== id).map((p) => [p, { host: '127.0.0.1', port: ports[p - 1]! }]),
        ),
        membership: {
          members: [
            { id: 1, role: MemberRole.Voter },
            { id: 2, role: MemberRole.Voter },
            { id: 3, role: MemberRole.Witness },
          ],
        },
        clusterKey: new Uint8Array(16).fill(3),
        tickMs: 10,
        electionTicks: 10,
      })
    }),
  )
  const open = new Set(replicas)
  t.teardown(() => Promise.all([...open].map((r) => r.close())))
  const leader = await until('a leader', () => replicas.find((r) => r.role === 'leader'))
  const other = replicas.find((r) => r !== leader && r.id !== 3)!
  for (let i = 0; i < 20; i++) await leader.propose(EntryType.Normal, new Uint8Array(8))
  await until('the other voter replicating', () => (vmBackupCaughtUp(leader, 5) ? true : undefined))
  t.ok(vmBackupCaughtUp(leader, 5), 'leader: the other VM voter is within 5 entries')
  t.notOk(vmBackupCaughtUp(other), 'a follower never says so')

  // The other voter goes away; leader and witness go on committing past the slack.
  await other.close()
  open.delete(other)
  for (let i = 0; i < 20; i++) await leader.propose(EntryType.Normal, new Uint8Array(8))
  const st = leader.status()
  t.ok(
    st.progress.some((p) => p.id === 3 && p.match >= st.lastIndex - 5),
    'the witness is caught up',
  )
  t.notOk(vmBackupCaughtUp(leader, 5), 'but it is no VM backup: not caught up')
})
