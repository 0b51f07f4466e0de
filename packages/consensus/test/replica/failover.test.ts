import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { MemberRole } from '../../src/core/types.js'
import { agreedLeader, type Proc, proposeAny, startCluster, until } from './cluster.js'

// 3 replica processes on loopback with real WAL dirs. The leader is SIGKILLed while proposals
// are in flight; every proposal whose promise resolved must be on the new leader at the same
// index, and the killed replica restarts from its files and catches up.

/** Every live pair agrees on every index both have applied (state-machine safety). */
function checkAgreement(t: Test, procs: Proc[]): void {
  for (const a of procs) {
    for (const b of procs) {
      if (a === b) continue
      for (const [i, v] of a.applied) {
        const w = b.applied.get(i)
        if (w !== undefined && w !== v)
          t.fail(`replicas ${a.cfg.id} and ${b.cfg.id} differ at ${i}: ${v} vs ${w}`)
      }
    }
  }
}

async function loadUntil(procs: Proc[], acked: Map<number, string>, stop: () => boolean, prefix: string) {
  let n = 0
  const worker = async () => {
    while (!stop()) {
      const leader = agreedLeader(procs)
      if (!leader) {
        await new Promise((r) => setTimeout(r, 10))
        continue
      }
      const data = `${prefix}-${n++}`
      const r = await leader.propose(data)
      if (r.type === 'proposed') acked.set(r.index, data)
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker))
}

t.test('SIGKILL the leader under load: no acknowledged entry lost; it restarts and catches up', async (t) => {
  const procs = await startCluster(t)
  const first = await until('a leader', () => agreedLeader(procs))
  t.ok(first, `replica ${first.cfg.id} leads`)

  const acked = new Map<number, string>()
  let stopLoad = false
  const load = loadUntil(procs, acked, () => stopLoad, 'a')
  await until('some commits', () => acked.size >= 50)
  const ackedBeforeKill = acked.size
  await first.kill()
  const second = await until('a new leader', () => agreedLeader(procs, first.cfg.id), 20_000)
  t.not(second.cfg.id, first.cfg.id, `replica ${second.cfg.id} took over`)
  await until('commits under the new leader', () => acked.size >= ackedBeforeKill + 50, 20_000)
  stopLoad = true
  await load

  // Every acknowledged proposal is on the new leader, at the index its promise gave.
  const maxAcked = Math.max(...acked.keys())
  await until(
    'new leader applied everything acked',
    () => second.applied.size > 0 && [...acked.keys()].every((i) => second.applied.has(i)),
  )
  let missing = 0
  for (const [i, data] of acked) if (!second.applied.get(i)?.endsWith(`:${data}`)) missing++
  t.equal(missing, 0, `${acked.size} acknowledged entries all present on the new leader in order`)

  // The killed replica restarts from its WAL and catches up to the same log.
  await first.start()
  const tail = await proposeAny(procs, 'after-restart')
  t.ok(tail > maxAcked)
  await until('restarted replica caught up', () => first.applied.has(tail), 20_000)
  for (const [i, data] of acked)
    t.ok(first.applied.get(i)?.endsWith(`:${data}`), `restarted has ${i}`, { diagnostic: false })
  checkAgreement(t, procs)
  t.same(
    procs.map((p) => p.errors),
    [[], [], []],
  )
})

t.test('restart of the whole cluster from disk preserves the log', async (t) => {
  const procs = await startCluster(t)
  await until('a leader', () => agreedLeader(procs))
  const acked = new Map<number, string>()
  for (let i = 0; i < 30; i++) acked.set(await proposeAny(procs, `d-${i}`), `d-${i}`)
  await Promise.all(procs.map((p) => p.kill()))
  await Promise.all(procs.map((p) => p.start()))
  await until('a leader after restart', () => agreedLeader(procs))
  const tail = await proposeAny(procs, 'tail')
  for (const p of procs) {
    await until(`replica ${p.cfg.id} replayed`, () => p.applied.has(tail))
    for (const [i, data] of acked)
      t.equal(p.applied.get(i)?.split(':')[1], data, `replica ${p.cfg.id} index ${i}`, { diagnostic: false })
  }
  checkAgreement(t, procs)
})

t.test('witness SIGKILLed under load: commits continue, it restarts from disk and catches up', async (t) => {
  const procs = await startCluster(t, [MemberRole.Voter, MemberRole.Voter, MemberRole.Witness])
  const leader = await until('a leader', () => agreedLeader(procs))
  t.not(leader.cfg.id, 3, 'the witness never leads')
  const witness = procs[2]
  const acked = new Map<number, string>()
  let stop = false
  const load = loadUntil(procs, acked, () => stop, 'w')
  await until('some commits', () => acked.size >= 30)
  await witness.kill()
  const before = acked.size
  await until('commits without the witness', () => acked.size >= before + 30, 20_000)
  await witness.start()
  await until('more commits after its restart', () => acked.size >= before + 60, 20_000)
  stop = true
  await load
  const last = Math.max(...acked.keys())
  await until('witness caught up', () => witness.applied.has(last), 20_000)
  let missing = 0
  for (const [i, data] of acked) if (!witness.applied.get(i)?.endsWith(`:${data}`)) missing++
  t.equal(missing, 0, `all ${acked.size} acknowledged entries on the restarted witness`)
  checkAgreement(t, procs)
})

t.test('a follower with a torn WAL tail truncates it on restart and catches up', async (t) => {
  const procs = await startCluster(t)
  const leader = await until('a leader', () => agreedLeader(procs))
  const follower = procs.find((p) => p !== leader)!
  const acked = new Map<number, string>()
  for (let i = 0; i < 20; i++) acked.set(await proposeAny(procs, `c-${i}`), `c-${i}`)
  await until('follower has them', () => follower.applied.size >= 20)
  await follower.kill()
  // A torn write at the tail: a batch that was being written when the process died. Its first
  // record's header made it to disk but not its payload (checksum mismatch), the next one is
  // cut mid-body. None of it was acknowledged, so truncating it loses nothing.
  const segs = readdirSync(follower.cfg.dir)
    .filter((n) => n.endsWith('.wal'))
    .sort()
  const path = join(follower.cfg.dir, segs[segs.length - 1])
  const torn = Buffer.alloc(8 + 6 + 8 + 10)
  torn.writeUInt32LE(6, 0)
  torn.writeUInt32LE(0xdeadbeef, 4)
  torn.fill(0xaa, 8, 14)
  torn.writeUInt32LE(4096, 14)
  torn.fill(0x55, 22)
  writeFileSync(path, Buffer.concat([readFileSync(path), torn]))
  for (let i = 20; i < 30; i++) acked.set(await proposeAny(procs, `c-${i}`), `c-${i}`)
  await follower.start()
  t.match(
    follower.truncatedTail,
    /checksum|length/,
    `recovery cut the damaged tail: ${follower.truncatedTail}`,
  )
  const tail = await proposeAny(procs, 'c-tail')
  await until('follower caught up', () => follower.applied.has(tail), 20_000)
  for (const [i, data] of acked)
    t.equal(follower.applied.get(i)?.split(':')[1], data, `index ${i}`, { diagnostic: false })
  t.same(follower.errors, [])
  checkAgreement(t, procs)
})
