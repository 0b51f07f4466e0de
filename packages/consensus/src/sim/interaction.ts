// Interpreter for scenario scripts: a tiny deterministic cluster of RaftCores with durable
// MemoryStorage, a FIFO network with partitions, and one handler per command. Every command
// returns the trace it caused (see describe.ts).
import { describeMembership } from '../core/membership.js'
import { RaftCore } from '../core/raft.js'
import {
  ConfChangeType,
  EntryType,
  type Member,
  MemberRole,
  type Message,
  type NodeId,
} from '../core/types.js'
import { parseArgs, parseIdList } from './datadriven.js'
import { describeEntries, describeMessage, describeReady } from './describe.js'
import { MemoryStorage } from './storage.js'

interface NodeOptions {
  electionTicks: number
  heartbeatTicks: number
  preVote: boolean
  checkQuorum: boolean
  maxInflightMsgs: number
  maxEntriesPerMsg: number
  /** Unset: the core's default. */
  maxUncommittedBytes: number | undefined
  random: number
}

interface EnvNode {
  id: NodeId
  core: RaftCore | undefined
  storage: MemoryStorage
  opts: NodeOptions
}

const enc = new TextEncoder()

export class InteractionEnv {
  private nodes = new Map<NodeId, EnvNode>()
  private net: Message[] = []
  /** Node → partition group; undefined = fully connected. */
  private groups: Map<NodeId, number> | undefined

  /** Runs one command; returns its trace (never empty: "ok" when nothing happened). */
  handle(command: string): string {
    const { name, positional, named } = parseArgs(command)
    const out: string[] = []
    const handler = this.handlers[name]
    if (!handler) throw new Error(`unknown command "${name}"`)
    handler(positional, named, out)
    return out.length > 0 ? out.join('\n') : 'ok'
  }

  private readonly handlers: Record<string, (p: string[], n: Map<string, string>, out: string[]) => void> = {
    'add-nodes': (p, n, out) => this.addNodes(Number(p[0]), n, out),
    campaign: (p, _n, out) => {
      this.core(num(p[0])).campaign()
      this.processReadies(out)
    },
    propose: (p, n, out) => {
      const id = num(p[0])
      const type = n.has('type') ? EntryType[n.get('type') as keyof typeof EntryType] : EntryType.Normal
      if (type === undefined) throw new Error(`unknown entry type ${n.get('type')}`)
      this.local(id, out, () => `index=${this.core(id).propose(type, enc.encode(p[1] ?? ''))}`)
    },
    tick: (p, _n, out) => {
      const ids = p[0] === 'all' ? this.liveIds() : parseIdList(p[0])
      const k = p[1] === undefined ? 1 : num(p[1])
      for (let i = 0; i < k; i++) for (const id of ids) this.core(id).tick()
      this.processReadies(out)
    },
    deliver: (p, _n, out) => this.deliver(p[0] === undefined ? undefined : parseIdList(p[0]), out),
    stabilize: (_p, _n, out) => this.stabilize(out),
    'process-ready': (_p, _n, out) => this.processReadies(out),
    drop: (p, _n, out) => this.drop(p, out),
    partition: (_p, _n, out) => this.partition(_p, out),
    heal: (_p, _n, out) => {
      this.groups = undefined
      out.push('healed')
    },
    crash: (p, _n, out) => {
      for (const id of parseIdList(p.join(','))) {
        this.node(id).core = undefined
        out.push(`${id}: crashed`)
      }
    },
    restart: (p, _n, out) => {
      for (const id of parseIdList(p.join(','))) {
        const nd = this.node(id)
        nd.core = this.newCore(nd)
        out.push(this.statusLine(nd.core))
      }
      this.processReadies(out)
    },
    'transfer-leadership': (p, _n, out) =>
      this.local(num(p[0]), out, () => {
        this.core(num(p[0])).transferLeadership(num(p[1]))
        return `transferring to ${p[1]}`
      }),
    'add-member': (p, _n, out) => {
      const [leader, id] = [num(p[0]), num(p[1])]
      const role = roleByName(p[2] ?? 'voter')
      this.local(leader, out, () => {
        const index = this.core(leader).proposeConfChange({ type: ConfChangeType.AddMember, id, role })
        return `index=${index}`
      })
    },
    'remove-member': (p, _n, out) => {
      const [leader, id] = [num(p[0]), num(p[1])]
      this.local(leader, out, () => {
        const index = this.core(leader).proposeConfChange({ type: ConfChangeType.RemoveMember, id, role: 0 })
        return `index=${index}`
      })
    },
    compact: (p, _n, out) => {
      const id = num(p[0])
      const nd = this.node(id)
      this.local(id, out, () => {
        const snap = this.core(id).compact(num(p[1]), enc.encode(p[2] ?? ''))
        nd.storage.compact(snap)
        return `compacted to ${snap.meta.term}/${snap.meta.index}`
      })
    },
    status: (p, _n, out) => {
      const ids = p.length === 0 ? [...this.nodes.keys()] : parseIdList(p.join(','))
      for (const id of ids) {
        const core = this.node(id).core
        if (!core) {
          out.push(`${id}: crashed`)
          continue
        }
        out.push(this.statusLine(core))
        for (const pr of core.status().progress) {
          if (pr.id === id) continue
          out.push(`  ${pr.id}: match=${pr.match} next=${pr.next} ${pr.state} inflight=${pr.inflight}`)
        }
      }
    },
    members: (p, _n, out) => {
      for (const id of parseIdList(p.join(','))) {
        const core = this.core(id)
        out.push(`${id}: ${core.role} members=(${describeMembership(core.membership)})`)
      }
    },
    log: (p, _n, out) => {
      for (const id of parseIdList(p.join(','))) {
        const core = this.core(id)
        const snap = core.snapshot
        const head = snap ? `snapshot=${snap.meta.term}/${snap.meta.index} ` : ''
        out.push(`${id}: ${head}${describeEntries(core.entries(0, core.lastIndex + 1))}`)
      }
    },
  }

  private addNodes(count: number, n: Map<string, string>, out: string[]): void {
    const first = this.nodes.size + 1
    const ids = Array.from({ length: count }, (_, i) => first + i)
    const voters = n.has('voters') ? parseIdList(n.get('voters')) : undefined
    const witnesses = parseIdList(n.get('witness'))
    const learners = parseIdList(n.get('learners'))
    // With no explicit membership, the first batch are all voters; later batches are joiners
    // with an empty membership that learn the real one from the log or a snapshot.
    const defaultVoters =
      first === 1 ? ids.filter((id) => !witnesses.includes(id) && !learners.includes(id)) : []
    const members: Member[] = [
      ...(voters ?? defaultVoters).map((id) => ({ id, role: MemberRole.Voter })),
      ...witnesses.map((id) => ({ id, role: MemberRole.Witness })),
      ...learners.map((id) => ({ id, role: MemberRole.Learner })),
    ].sort((a, b) => a.id - b.id)
    const opts: NodeOptions = {
      electionTicks: num(n.get('election') ?? '10'),
      heartbeatTicks: num(n.get('heartbeat') ?? '1'),
      preVote: (n.get('prevote') ?? 'true') === 'true',
      checkQuorum: (n.get('checkquorum') ?? 'true') === 'true',
      maxInflightMsgs: num(n.get('inflight') ?? '256'),
      maxEntriesPerMsg: num(n.get('max-entries') ?? '1024'),
      maxUncommittedBytes: n.has('max-uncommitted') ? num(n.get('max-uncommitted')!) : undefined,
      random: Number(n.get('random') ?? '0'),
    }
    for (const id of ids) {
      const nd: EnvNode = { id, core: undefined, storage: new MemoryStorage({ members }), opts }
      nd.core = this.newCore(nd)
      this.nodes.set(id, nd)
      out.push(`${this.statusLine(nd.core)} members=(${describeMembership(nd.core.membership)})`)
    }
  }

  private newCore(nd: EnvNode): RaftCore {
    const o = nd.opts
    return new RaftCore(
      {
        id: nd.id,
        electionTicks: o.electionTicks,
        heartbeatTicks: o.heartbeatTicks,
        random: () => o.random,
        preVote: o.preVote,
        checkQuorum: o.checkQuorum,
        maxInflightMsgs: o.maxInflightMsgs,
        maxEntriesPerMsg: o.maxEntriesPerMsg,
        maxUncommittedBytes: o.maxUncommittedBytes,
      },
      nd.storage.restored(),
    )
  }

  private statusLine(c: RaftCore): string {
    const s = c.status()
    return `${s.id}: ${s.role} term=${s.term} vote=${s.vote} leader=${s.leader} commit=${s.commit} applied=${s.applied} log=${s.firstIndex}..${s.lastIndex}`
  }

  /** Run a local API call, printing its result or its error, then the resulting Ready. */
  private local(id: NodeId, out: string[], f: () => string): void {
    try {
      out.push(`${id}: ${f()}`)
    } catch (err) {
      out.push(`${id}: error ${(err as Error).name}: ${(err as Error).message}`)
    }
    this.processReadies(out)
  }

  /** Persist → send → apply → advance, for every live node, until nobody has a Ready. */
  private processReadies(out: string[]): void {
    for (let round = 0; round < 100; round++) {
      let any = false
      for (const nd of this.nodes.values()) {
        const c = nd.core
        if (!c?.hasReady()) continue
        any = true
        const rd = c.ready()
        out.push(...describeReady(nd.id, rd))
        nd.storage.persist(rd)
        this.net.push(...rd.messages)
        c.advance(rd)
      }
      if (!any) return
    }
    throw new Error('processReadies did not settle')
  }

  private reachable(m: Message): string | undefined {
    const to = this.nodes.get(m.to)
    if (!to) return 'no such node'
    if (!to.core) return `${m.to} is down`
    if (this.groups && this.groups.get(m.from) !== this.groups.get(m.to)) return 'partitioned'
    return undefined
  }

  /** Deliver every message queued right now (optionally only those to `to`), in FIFO order. */
  private deliver(to: NodeId[] | undefined, out: string[]): void {
    const now = this.net
    this.net = []
    for (const m of now) {
      if (to && !to.includes(m.to)) {
        this.net.push(m)
        continue
      }
      const why = this.reachable(m)
      if (why) {
        out.push(`dropped ${describeMessage(m)} (${why})`)
        continue
      }
      this.core(m.to).step(m)
    }
    this.processReadies(out)
  }

  private stabilize(out: string[]): void {
    this.processReadies(out)
    for (let i = 0; i < 1000; i++) {
      if (this.net.length === 0) return
      this.deliver(undefined, out)
    }
    throw new Error('stabilize did not settle')
  }

  private drop(p: string[], out: string[]): void {
    const spec = p[0] ?? 'all'
    const [from, to] = spec === 'all' ? [0, 0] : spec.split('->').map(Number)
    const keep: Message[] = []
    for (const m of this.net) {
      if ((from === 0 || m.from === from) && (to === 0 || to === undefined || m.to === to)) {
        out.push(`dropped ${describeMessage(m)}`)
      } else keep.push(m)
    }
    this.net = keep
  }

  private partition(p: string[], out: string[]): void {
    const groups = p
      .join(' ')
      .split('|')
      .map((g) => parseIdList(g.trim()))
    this.groups = new Map()
    groups.forEach((g, k) => {
      for (const id of g) this.groups?.set(id, k)
    })
    out.push(`partitioned ${groups.map((g) => `(${g.join(' ')})`).join(' ')}`)
  }

  private liveIds(): NodeId[] {
    return [...this.nodes.values()].filter((n) => n.core).map((n) => n.id)
  }

  private node(id: NodeId): EnvNode {
    const nd = this.nodes.get(id)
    if (!nd) throw new Error(`no node ${id}`)
    return nd
  }

  private core(id: NodeId): RaftCore {
    const c = this.node(id).core
    if (!c) throw new Error(`node ${id} is crashed`)
    return c
  }
}

function num(s: string | undefined): number {
  const n = Number(s)
  if (s === undefined || !Number.isFinite(n)) throw new Error(`expected a number, got "${s}"`)
  return n
}

function roleByName(s: string): MemberRole {
  switch (s) {
    case 'voter':
      return MemberRole.Voter
    case 'witness':
      return MemberRole.Witness
    case 'learner':
      return MemberRole.Learner
  }
  throw new Error(`unknown role ${s}`)
}
