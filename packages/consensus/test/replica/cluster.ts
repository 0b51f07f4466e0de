import { type ChildProcess, fork } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { MemberRole } from '../../src/core/types.js'
import type { FromChild, ProcConfig, ToChild } from './fixtures/replica-process.js'

// Test harness: N replicas as real child processes on loopback, each with its own WAL dir.
// Children run the TypeScript fixture through the same loader tap gave this process.

const FIXTURE = fileURLToPath(new URL('./fixtures/replica-process.ts', import.meta.url))

export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<import('node:net').Server>((resolve) => {
          const s = createServer()
          s.listen(0, '127.0.0.1', () => resolve(s))
        }),
    ),
  )
  const ports = servers.map((s) => (s.address() as { port: number }).port)
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))))
  return ports
}

export class Proc {
  child: ChildProcess | undefined
  /** index -> "term:data" as applied by this process since it (re)started. */
  applied = new Map<number, string>()
  leader = 0
  term = 0
  /** Set at each start: the torn/corrupt tail recovery cut off, if any. */
  truncatedTail: string | undefined
  private req = 0
  private waiters = new Map<number, (m: FromChild) => void>()
  readonly errors: string[] = []

  constructor(
    readonly cfg: ProcConfig,
    private readonly t: Test,
  ) {}

  async start(): Promise<void> {
    this.applied = new Map()
    this.leader = 0
    const child = fork(FIXTURE, [JSON.stringify(this.cfg)], {
      execArgv: process.execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    this.child = child
    this.dead = false
    child.on('message', (m: FromChild) => this.onMessage(m))
    child.on('error', () => {}) // IPC to a process that just died
    child.once('exit', () => this.onExit())
    await new Promise<void>((resolve, reject) => {
      const onMsg = (m: FromChild) => {
        if (m.type === 'ready') {
          this.truncatedTail = m.truncatedTail
          child.off('message', onMsg)
          resolve()
        }
      }
      child.on('message', onMsg)
      child.once('exit', (code) => reject(new Error(`replica ${this.cfg.id} exited early (${code})`)))
    })
  }

  private dead = true

  get alive(): boolean {
    return !this.dead
  }

  kill(): Promise<void> {
    const c = this.child
    if (!c || this.dead) return Promise.resolve()
    this.dead = true
    return new Promise((r) => {
      c.once('exit', () => r())
      c.kill('SIGKILL')
    })
  }

  private onExit(): void {
    this.dead = true
    for (const w of this.waiters.values()) w({ type: 'propose-failed', req: -1, error: 'exited' })
    this.waiters.clear()
  }

  propose(data: string): Promise<FromChild> {
    const req = ++this.req
    return new Promise((resolve) => {
      if (this.dead) return resolve({ type: 'propose-failed', req, error: 'dead' })
      this.waiters.set(req, resolve)
      this.child!.send({ type: 'propose', req, data } satisfies ToChild)
    })
  }

  send(m: ToChild): void {
    this.child?.send(m)
  }

  private onMessage(m: FromChild): void {
    if (m.type === 'leader') {
      this.leader = m.leader
      this.term = m.term
    } else if (m.type === 'apply') {
      const v = `${m.term}:${m.data}`
      const prev = this.applied.get(m.index)
      if (prev !== undefined && prev !== v)
        this.t.fail(`replica ${this.cfg.id} applied two values at ${m.index}`)
      this.applied.set(m.index, v)
    } else if (m.type === 'proposed' || m.type === 'propose-failed') {
      this.waiters.get(m.req)?.(m)
      this.waiters.delete(m.req)
    } else if (m.type === 'error') this.errors.push(m.message)
  }
}

export async function startCluster(
  t: Test,
  roles: MemberRole[] = [MemberRole.Voter, MemberRole.Voter, MemberRole.Voter],
): Promise<Proc[]> {
  const ports = await freePorts(roles.length)
  const ids = roles.map((_, i) => i + 1)
  const procs = ids.map((id, i) => {
    const dir = mkdtempSync(join(tmpdir(), `plover-replica-${id}-`))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const cfg: ProcConfig = {
      id,
      dir,
      port: ports[i],
      peers: ids.filter((p) => p !== id).map((p) => [p, ports[p - 1]]),
      members: ids.map((p) => [p, roles[p - 1]]),
      tickMs: 10,
    }
    return new Proc(cfg, t)
  })
  t.teardown(() => Promise.all(procs.map((p) => p.kill())))
  await Promise.all(procs.map((p) => p.start()))
  return procs
}

export async function until<T>(what: string, f: () => T | undefined | false, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = f()
    if (v !== undefined && v !== false) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** The leader every live process agrees on. */
export function agreedLeader(procs: Proc[], exclude = 0): Proc | undefined {
  const live = procs.filter((p) => p.alive)
  const l = live[0]?.leader
  if (!l || l === exclude || !live.every((p) => p.leader === l)) return undefined
  return procs.find((p) => p.cfg.id === l && p.alive)
}

/** Propose `data` to whoever leads, following leader hints, until acknowledged. */
export async function proposeAny(procs: Proc[], data: string, ms = 10_000): Promise<number> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    const target = agreedLeader(procs)
    if (target) {
      const r = await target.propose(data)
      if (r.type === 'proposed') return r.index
    }
    await new Promise((r) => setTimeout(r, 30))
  }
  throw new Error(`could not commit ${data}`)
}
