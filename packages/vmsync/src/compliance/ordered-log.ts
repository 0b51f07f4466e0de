// Behavioural compliance suite for OrderedLog implementations (the @plover/consensus adapter and
// the in-memory cluster here). Input delivery relies on exactly these properties: a propose that
// resolves only with the index it committed at; every member applying every committed record
// once, in index order, with its kind and bytes intact; and only the leader accepting proposals.
import { type LogRecord, LogRecordKind, type OrderedLog } from '../log/ordered-log.js'
import { type ComplianceTest, checkEach } from './compliance-test.js'

/** A fresh group: its leader (already elected) and the other members, all following one log. */
export interface OrderedLogGroup {
  readonly leader: OrderedLog
  readonly followers: readonly OrderedLog[]
  cleanup(): Promise<void>
}

export interface OrderedLogComplianceOptions {
  /** How long to wait for records to be applied everywhere (default 10 000 ms). */
  readonly timeoutMs?: number
}

const KINDS = [LogRecordKind.Input, LogRecordKind.SyncMarker, LogRecordKind.SyncDone, LogRecordKind.Unprotect]

function record(i: number): { kind: LogRecordKind; data: Uint8Array } {
  const data = new TextEncoder().encode(`record-${i}-${'x'.repeat(i % 97)}`)
  return { kind: KINDS[i % KINDS.length]!, data }
}

/** Everything `log` applies from now on. */
function applied(log: OrderedLog): LogRecord[] {
  const out: LogRecord[] = []
  log.on('apply', (r) => out.push({ index: r.index, kind: r.kind, data: Uint8Array.from(r.data) }))
  return out
}

async function until(what: string, cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

const same = (x: Uint8Array, y: Uint8Array) =>
  x.length === y.length && Buffer.from(x.buffer, x.byteOffset, x.length).equals(y)

/** Runs every check as a subtest of `t`; each subtest gets a fresh group from `factory`. */
export async function runOrderedLogCompliance(
  t: ComplianceTest,
  factory: () => Promise<OrderedLogGroup>,
  options: OrderedLogComplianceOptions = {},
): Promise<void> {
  const ms = options.timeoutMs ?? 10_000
  const check = checkEach(t, factory)

  /** Every member applied exactly the records proposed at `indices`, in index order, intact. */
  const allApplied = async (
    t: ComplianceTest,
    members: readonly OrderedLog[],
    logs: LogRecord[][],
    want: readonly { index: number; kind: LogRecordKind; data: Uint8Array }[],
  ) => {
    const sorted = [...want].sort((x, y) => x.index - y.index)
    await until(
      `${want.length} records applied by all ${members.length} members`,
      () => logs.every((l) => l.length >= want.length),
      ms,
    ).catch(() => undefined)
    for (const [m, log] of logs.entries()) {
      const who = m === 0 ? 'leader' : `follower ${m}`
      t.equal(log.length, want.length, `${who} applied ${log.length} of ${want.length} records`)
      const firstBad = log.findIndex((r, i) => {
        const w = sorted[i]
        return !w || r.index !== w.index || r.kind !== w.kind || !same(r.data, w.data)
      })
      t.equal(firstBad, -1, `${who}: each record once, in index order, at its proposed index, intact`)
    }
  }

  await check('exactly one member leads', async (t, { leader, followers }) => {
    t.ok(leader.isLeader, 'the leader says so')
    t.ok(
      followers.every((f) => !f.isLeader),
      'no follower does',
    )
  })

  await check(
    'proposals resolve with increasing indices and every member applies them in order',
    async (t, { leader, followers }) => {
      const members = [leader, ...followers]
      const logs = members.map(applied)
      const want: { index: number; kind: LogRecordKind; data: Uint8Array }[] = []
      for (let i = 0; i < 30; i++) {
        const r = record(i)
        want.push({ index: await leader.propose(r.kind, r.data), ...r })
      }
      t.ok(
        want.every((w, i) => i === 0 || w.index > want[i - 1]!.index),
        'each proposal resolved with a larger index than the one before',
      )
      await allApplied(t, members, logs, want)
    },
  )

  await check(
    'concurrent proposals get distinct indices, applied in index order',
    async (t, { leader, followers }) => {
      const members = [leader, ...followers]
      const logs = members.map(applied)
      const recs = Array.from({ length: 60 }, (_, i) => record(100 + i))
      const indices = await Promise.all(recs.map((r) => leader.propose(r.kind, r.data)))
      t.equal(new Set(indices).size, indices.length, 'distinct indices')
      await allApplied(
        t,
        members,
        logs,
        recs.map((r, i) => ({ index: indices[i]!, ...r })),
      )
    },
  )

  await check('a follower refuses to propose', async (t, { followers }) => {
    const f = followers[0]
    t.ok(f !== undefined, 'the group has a follower')
    if (f) await t.rejects(f.propose(LogRecordKind.Input, new Uint8Array(1)), /./, 'propose rejects')
  })
}
