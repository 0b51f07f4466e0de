import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { NotLeaderError } from '../../src/core/errors.js'
import { ConfChangeType, EntryType, MemberRole, type NodeId } from '../../src/core/types.js'
import { LeadershipLostError } from '../../src/replica/errors.js'
import { Replica } from '../../src/replica/replica.js'
import { StorageError } from '../../src/wal/errors.js'
import { freePorts, until } from './cluster.js'

// In-process replicas (real WAL files, real loopback sockets, real timers) for the driver's
// error paths. The multi-process crash tests are in failover.test.ts.

const KEY = Buffer.from('in-process-test-key-0123456789ab')

/** Open replica `id` on its directory (a new empty one with `fresh`). */
type Opener = (id: NodeId, fresh?: boolean) => Promise<Replica>

async function opener(t: Test, n: number, dirOf?: (id: NodeId) => string): Promise<Opener> {
  const ports = await freePorts(n)
  const ids = ports.map((_, i) => i + 1)
  const dirs = new Map<NodeId, string>()
  const opened: Replica[] = []
  t.teardown(() => Promise.all(opened.map((r) => r.close())))
  return async (id, fresh = false) => {
    let dir = fresh ? undefined : (dirs.get(id) ?? dirOf?.(id))
    if (!dir) {
      const d = mkdtempSync(join(tmpdir(), `plover-rep-${id}-`))
      t.teardown(() => rmSync(d, { recursive: true, force: true }))
      dir = d
    }
    dirs.set(id, dir)
    const r = await Replica.open({
      id,
      dir,
      listen: { host: '127.0.0.1', port: ports[id - 1] },
      peers: new Map(ids.filter((p) => p !== id).map((p) => [p, { host: '127.0.0.1', port: ports[p - 1] }])),
      membership: { members: ids.map((m) => ({ id: m, role: MemberRole.Voter })) },
      clusterKey: KEY,
    })
    opened.push(r)
    return r
  }
}

async function group(t: Test, n: number, dirOf?: (id: NodeId) => string): Promise<Replica[]> {
  const open = await opener(t, n, dirOf)
  return Promise.all(Array.from({ length: n }, (_, i) => open(i + 1)))
}

t.test(
  'propose resolves with the committed index; apply sees it; followers refuse with a hint',
  async (t) => {
    const reps = await group(t, 3)
    const leader = await until('leader', () => reps.find((r) => r.role === 'leader'))
    const applied: string[] = []
    const follower = reps.find((r) => r !== leader)!
    follower.on('apply', (e) => e.type === EntryType.Normal && applied.push(Buffer.from(e.data).toString()))
    const i1 = await leader.propose(EntryType.Normal, Buffer.from('one'))
    const i2 = await leader.propose(EntryType.Normal, Buffer.from('two'))
    t.equal(i2, i1 + 1)
    t.ok(leader.commitIndex >= i2)
    await until('follower applied', () => applied.length === 2)
    t.same(applied, ['one', 'two'])
    await until('follower knows the leader', () => follower.leader === leader.id)
    const err = await follower.propose(EntryType.Normal, Buffer.from('x')).catch((e: unknown) => e)
    t.ok(err instanceof NotLeaderError)
    t.equal((err as NotLeaderError).leader, leader.id, 'leader hint')
  },
)

t.test('a leader cut off from its quorum steps down and rejects pending proposals', async (t) => {
  const reps = await group(t, 3)
  const leader = await until('leader', () => reps.find((r) => r.role === 'leader'))
  await leader.propose(EntryType.Normal, Buffer.from('ok'))
  const gone: string[] = []
  leader.on('disconnected', (i) => gone.push(`${i.peer}: ${i.reason}`))
  for (const r of reps) if (r !== leader) await r.close()
  const roles: string[] = []
  leader.on('role', (r) => roles.push(r))
  const err = await leader.propose(EntryType.Normal, Buffer.from('orphan')).catch((e: unknown) => e)
  t.ok(err instanceof LeadershipLostError, `rejected with ${(err as Error).name}`)
  t.equal((err as LeadershipLostError).overwritten, false, 'outcome unknown, not claimed lost')
  t.not(leader.role, 'leader')
  t.ok(roles.length > 0, 'role event emitted')
  t.ok(gone.length >= 2, `disconnections reported with reasons: ${gone.join('; ')}`)
})

t.test(
  'compaction, snapshot install to a follower with an empty disk, and restart from the snapshot',
  async (t) => {
    const open = await opener(t, 3)
    const reps = [await open(1), await open(2), await open(3)]
    const leader = await until('leader', () => reps.find((r) => r.role === 'leader'))
    const lagger = reps.find((r) => r !== leader)!
    const other = reps.find((r) => r !== leader && r !== lagger)!
    await lagger.close()
    let last = 0
    for (let i = 0; i < 30; i++) last = await leader.propose(EntryType.Normal, Buffer.from(`s-${i}`))
    await until('other applied', () => other.commitIndex >= last)
    await until('leader applied', () => leader.status().applied >= last)
    await leader.compact(last - 5, Buffer.from(`app-state@${last - 5}`))
    t.equal(leader.status().firstIndex, last - 4, 'leader log compacted')

    // The follower comes back on an EMPTY disk (a replaced machine): it needs entries the leader
    // no longer has, so it must get the snapshot. (With its old disk it may instead catch up from
    // appends the transport queued while it was down.)
    const back = await open(lagger.id, true)
    const snaps: string[] = []
    const applied: number[] = []
    back.on('snapshot', (s) => {
      snaps.push(Buffer.from(s.data).toString())
      applied.length = 0 // the app's state is replaced: what counts is what follows
    })
    back.on('apply', (e) => applied.push(e.index))
    await until('follower caught up', () => applied.includes(last), 15_000)
    t.same(snaps, [`app-state@${last - 5}`], 'snapshot installed on the follower')
    t.same(
      applied.slice(0, 5),
      [last - 4, last - 3, last - 2, last - 1, last],
      'then exactly the entries after it',
    )
    await back.close()

    // Restart from its own snapshot file + WAL: snapshot event first, then the log after it.
    const again = await open(lagger.id)
    t.equal(again.recovery.snapshot?.meta.index, last - 5)
    const snaps2: string[] = []
    const applied2: number[] = []
    again.on('snapshot', (s) => snaps2.push(Buffer.from(s.data).toString()))
    again.on('apply', (e) => applied2.push(e.index))
    await until('replayed', () => applied2.includes(last), 15_000)
    t.same(snaps2, [`app-state@${last - 5}`])
    t.equal(applied2[0], last - 4)
  },
)

t.test('leadership transfer and removing a member, through the driver', async (t) => {
  const reps = await group(t, 3)
  const leader = await until('leader', () => reps.find((r) => r.role === 'leader'))
  await leader.propose(EntryType.Normal, Buffer.from('before'))
  const target = reps.find((r) => r !== leader)!
  const seen: number[] = []
  target.on('leader', (l) => seen.push(l))
  leader.transferLeadership(target.id)
  await until('transfer done', () => target.role === 'leader')
  t.ok(seen.includes(target.id), 'leader event on the new leader')
  await until('old leader follows', () => leader.leader === target.id)

  // Remove the old leader; the remaining two keep committing and drop its connection.
  const removed = leader
  let committedRemoval = 0
  for (let i = 0; i < 100 && !committedRemoval; i++) {
    committedRemoval = await target
      .proposeConfChange({ type: ConfChangeType.RemoveMember, id: removed.id, role: MemberRole.Voter })
      .catch(async () => {
        await new Promise((r) => setTimeout(r, 20)) // the new leader first commits in its term
        return 0
      })
  }
  t.ok(committedRemoval > 0, `removal committed at ${committedRemoval}`)
  t.same(
    target.membership.members.map((m) => m.id).sort(),
    reps
      .filter((r) => r !== removed)
      .map((r) => r.id)
      .sort(),
  )
  const idx = await target.propose(EntryType.Normal, Buffer.from('after'))
  t.ok(idx > committedRemoval, 'two-member cluster still commits')
  await until('removed peer disconnected', () => target.peerStats(removed.id) === undefined)
})

// A real full disk: a 1 MiB tmpfs (needs root; skipped otherwise), always unmounted.
const mnt = mkdtempSync(join(tmpdir(), 'plover-rep-enospc-'))
let mounted = false
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt], { stdio: 'ignore' })
  mounted = true
} catch {}
t.teardown(() => {
  if (mounted) execFileSync('umount', [mnt])
  rmdirSync(mnt)
})

t.test(
  'disk full: the replica emits error, rejects everything and stops; acked entries survive',
  { skip: !mounted && 'cannot mount tmpfs' },
  async (t) => {
    const [r] = await group(t, 1, () => join(mnt, 'wal'))
    await until('single-node leader', () => r.role === 'leader')
    const errors: Error[] = []
    r.on('error', (e) => errors.push(e))
    const acked: number[] = []
    let failure: unknown
    for (let i = 0; i < 1000 && !failure; i++) {
      await r.propose(EntryType.Normal, new Uint8Array(8192).fill(i & 0xff)).then(
        (idx) => acked.push(idx),
        (e: unknown) => {
          failure = e
        },
      )
    }
    t.ok(failure instanceof StorageError, `proposal failed with ${(failure as Error)?.name}`)
    t.equal((failure as StorageError).code, 'ENOSPC')
    t.equal(errors.length, 1, 'one error event')
    await t.rejects(
      r.propose(EntryType.Normal, Buffer.from('after')),
      StorageError,
      'stopped: rejects new proposals',
    )
    await r.close()
    t.ok(acked.length > 10, `${acked.length} proposals acknowledged before the disk filled`)
    const { Wal } = await import('../../src/wal/wal.js')
    const wal = await Wal.open(join(mnt, 'wal'))
    const have = new Set(wal.recovered.entries.map((e) => e.index))
    t.ok(
      acked.every((i) => have.has(i)),
      'every acknowledged entry is on disk',
    )
    await wal.close()
  },
)
