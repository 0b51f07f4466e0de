// The SyncLink and OrderedLog compliance suites must be able to fail: run them against
// deliberately broken doubles through a recording test double, check that the check each fault
// breaks fails, and that the sound double passes everything.
import { EventEmitter } from 'eventemitter3'
import t from 'tap'
import { runOrderedLogCompliance, runSyncLinkCompliance } from '../../src/compliance/index.js'
import { LinkClosedError } from '../../src/link/errors.js'
import type { SyncLink, SyncLinkEvents } from '../../src/link/link.js'
import { MemoryLogCluster, type MemoryOrderedLog } from '../../src/log/memory-log.js'
import type { LogRecordKind, OrderedLog, OrderedLogEvents } from '../../src/log/ordered-log.js'
import { Recorder } from './fixtures/recorder.js'

type LinkFault = 'none' | 'reorder' | 'synchronous' | 'silent-close' | 'no-copy'

/** An in-memory link end with one deliberate fault. */
class FaultyLink extends EventEmitter<SyncLinkEvents> implements SyncLink {
  peer!: FaultyLink
  isOpen = true
  private sent = 0
  private held: Uint8Array | undefined
  constructor(private readonly fault: LinkFault) {
    super()
  }
  send(payload: Uint8Array): Promise<void> {
    if (!this.isOpen) return Promise.reject(new LinkClosedError('closed'))
    const data = this.fault === 'no-copy' ? payload : Uint8Array.from(payload)
    const i = this.sent++
    if (this.fault === 'synchronous') this.peer.emit('message', data)
    else if (this.fault === 'reorder' && i % 2 === 1) this.held = data
    else
      setImmediate(() => {
        this.peer.emit('message', data)
        if (this.held) this.peer.emit('message', this.held)
        this.held = undefined
      })
    return Promise.resolve()
  }
  close(error?: Error): void {
    if (!this.isOpen) return
    this.isOpen = false
    setImmediate(() => this.emit('close', error))
    if (this.fault === 'silent-close') return
    if (this.peer.isOpen) {
      this.peer.isOpen = false
      setImmediate(() => this.peer.emit('close', new LinkClosedError('peer closed')))
    }
  }
}

async function linkFailures(fault: LinkFault): Promise<string[]> {
  const rec = new Recorder()
  await runSyncLinkCompliance(
    rec,
    async () => {
      const a = new FaultyLink(fault)
      const b = new FaultyLink(fault)
      a.peer = b
      b.peer = a
      return { a, b, cleanup: async () => a.close() }
    },
    { timeoutMs: 500 },
  )
  return rec.failures
}

t.test('SyncLink suite: a sound double passes', async (t) => {
  t.same(await linkFailures('none'), [])
})

/** The suite run on the faulty double reports a failure of the check `check` names. */
function catches(what: string, failures: () => Promise<string[]>, check: RegExp): void {
  t.test(what, async (t) => {
    const got = await failures()
    t.ok(
      got.some((f) => check.test(f)),
      `the check fails: ${got.join(' | ') || 'no failures'}`,
    )
  })
}

for (const [fault, check] of [
  ['reorder', /^payloads arrive whole and in send order/],
  ['synchronous', /^nothing is delivered from inside send\(\)/],
  ['silent-close', /^close: each end sees it once/],
  ['no-copy', /^the sender may reuse its buffer/],
] as const)
  catches(`SyncLink suite catches a link that does '${fault}'`, () => linkFailures(fault), check)

type LogFault = 'none' | 'duplicate-apply' | 'wrong-index' | 'follower-accepts'

/** A member of an in-memory cluster with one deliberate fault. */
class FaultyLog extends EventEmitter<OrderedLogEvents> implements OrderedLog {
  constructor(
    private readonly inner: MemoryOrderedLog,
    private readonly fault: LogFault,
    private readonly leaderOf: () => MemoryOrderedLog,
  ) {
    super()
    inner.on('apply', (r) => {
      this.emit('apply', r)
      if (fault === 'duplicate-apply') this.emit('apply', r)
    })
    inner.on('leadership', (l) => this.emit('leadership', l))
  }
  get isLeader(): boolean {
    return this.inner.isLeader
  }
  async propose(kind: LogRecordKind, data: Uint8Array): Promise<number> {
    const via = this.fault === 'follower-accepts' ? this.leaderOf() : this.inner
    const index = await via.propose(kind, data)
    return this.fault === 'wrong-index' ? index + 1 : index
  }
}

async function logFailures(fault: LogFault): Promise<string[]> {
  const rec = new Recorder()
  await runOrderedLogCompliance(
    rec,
    async () => {
      const cluster = new MemoryLogCluster()
      const inner = [cluster.join(), cluster.join(), cluster.join()]
      cluster.setLeader(inner[0])
      const logs = inner.map((m) => new FaultyLog(m, fault, () => inner[0]!))
      return { leader: logs[0]!, followers: logs.slice(1), cleanup: async () => {} }
    },
    { timeoutMs: 500 },
  )
  return rec.failures
}

t.test('OrderedLog suite: a sound double passes', async (t) => {
  t.same(await logFailures('none'), [])
})

for (const [fault, check] of [
  ['duplicate-apply', /^proposals resolve with increasing indices/],
  ['wrong-index', /each record once, in index order, at its proposed index/],
  ['follower-accepts', /^a follower refuses to propose/],
] as const)
  catches(`OrderedLog suite catches a log that does '${fault}'`, () => logFailures(fault), check)
