// The checker client, run inside the client network namespace: ONE TCP connection to the guest's
// redis, kept open for the whole run (never reconnects: if it breaks, that is reported). It SETs
// chk:<n> one at a time and records every acknowledged SET. On "verify" (a line on stdin) it
// stops writing and reads every acknowledged key back over the same connection.
//
// stdout: one JSON object per line — {type:'connected'}, {type:'ack', n, at} per acknowledged
// SET, {type:'closed', reason}, {type:'verified', …}.
//
//   ip netns exec NS node --import tsx src/checker/main.ts 10.77.0.10 [port]
import { connect } from 'node:net'
import { createInterface } from 'node:readline'

const host = process.argv[2] ?? '10.77.0.10'
const port = Number(process.argv[3] ?? 6379)
const out = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`)

type Reply = { kind: 'simple' | 'error'; text: string } | { kind: 'bulk'; value: Buffer | null }

/** Minimal RESP reader: simple strings, errors, bulk strings (all the checker needs). */
class RespReader {
  private buf: Buffer = Buffer.alloc(0)
  private readonly waiting: Array<(r: Reply) => void> = []
  /** Replies parsed before anyone asked for them (pipelined GETs arrive in one chunk). */
  private readonly ready: Reply[] = []

  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk
    for (;;) {
      const r = this.parse()
      if (!r) return
      const w = this.waiting.shift()
      if (w) w(r)
      else this.ready.push(r)
    }
  }

  next(): Promise<Reply> {
    const r = this.ready.shift()
    if (r) return Promise.resolve(r)
    if (closed) return Promise.resolve({ kind: 'error', text: 'connection closed' })
    return new Promise((resolve) => this.waiting.push(resolve))
  }

  /** The connection is gone: answer every pending request with an error. */
  abort(): void {
    for (const w of this.waiting.splice(0)) w({ kind: 'error', text: 'connection closed' })
  }

  private parse(): Reply | undefined {
    const eol = this.buf.indexOf('\r\n')
    if (eol < 0) return undefined
    const type = String.fromCharCode(this.buf[0])
    const line = this.buf.subarray(1, eol).toString()
    if (type === '+' || type === '-' || type === ':') {
      this.buf = this.buf.subarray(eol + 2)
      return { kind: type === '-' ? 'error' : 'simple', text: line }
    }
    if (type === '$') {
      const len = Number(line)
      if (len < 0) {
        this.buf = this.buf.subarray(eol + 2)
        return { kind: 'bulk', value: null }
      }
      if (this.buf.length < eol + 2 + len + 2) return undefined
      const value = Buffer.from(this.buf.subarray(eol + 2, eol + 2 + len))
      this.buf = this.buf.subarray(eol + 2 + len + 2)
      return { kind: 'bulk', value }
    }
    throw new Error(`unexpected RESP type ${JSON.stringify(type)}`)
  }
}

const cmd = (...args: string[]) =>
  `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`

const socket = connect({ host, port })
socket.setNoDelay(true)
const reader = new RespReader()
let closed: string | undefined
let stopping = false
const acked = new Map<number, string>()
socket.on('data', (c: Buffer) => reader.push(c))
socket.on('error', (e) => {
  closed ??= `error: ${e.message}`
})
socket.on('close', () => {
  closed ??= 'closed by peer'
  reader.abort()
  out({ type: 'closed', reason: closed, at: Date.now() })
})

async function writer(): Promise<void> {
  for (let n = 1; !stopping && !closed; n++) {
    const value = `v${n}-${Math.random().toString(36).slice(2, 10)}`
    socket.write(cmd('SET', `chk:${n}`, value))
    const r = await reader.next()
    if (r.kind === 'simple' && r.text === 'OK') {
      acked.set(n, value)
      out({ type: 'ack', n, at: Date.now() })
    } else out({ type: 'set-error', n, reply: JSON.stringify(r) })
    await new Promise((res) => setTimeout(res, 25))
  }
}

async function verify(): Promise<void> {
  stopping = true
  await writing
  const missing: number[] = []
  const wrong: number[] = []
  let readable = 0
  const keys = [...acked.keys()]
  for (let i = 0; i < keys.length && !closed; i += 100) {
    const batch = keys.slice(i, i + 100)
    socket.write(batch.map((n) => cmd('GET', `chk:${n}`)).join(''))
    for (const n of batch) {
      const r = await reader.next()
      if (r.kind !== 'bulk' || r.value === null) missing.push(n)
      else if (r.value.toString() !== acked.get(n)) wrong.push(n)
      else readable++
    }
  }
  out({
    type: 'verified',
    acked: acked.size,
    readable,
    missing: missing.slice(0, 20),
    missingCount: missing.length,
    wrong: wrong.slice(0, 20),
    wrongCount: wrong.length,
    connectionSurvived: !closed,
    closedReason: closed ?? null,
    localPort: socket.localPort,
  })
  socket.end()
}

let writing: Promise<void> = Promise.resolve()
socket.once('connect', () => {
  out({ type: 'connected', localPort: socket.localPort, at: Date.now() })
  writing = writer()
})
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'verify') void verify().then(() => process.exit(0))
  if (line.trim() === 'stop') process.exit(0)
})
