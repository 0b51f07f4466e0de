// Behavioural compliance suite for SyncLink implementations (the authenticated TCP link and the
// in-memory pair here). The sync protocol relies on exactly these properties: whole payloads, in
// send order, each way; a sender free to reuse its buffer once send() resolved; no delivery from
// inside send(); and a close that both ends see once, after which sending fails.
import type { SyncLink } from '../link/link.js'
import { type ComplianceTest, checkEach } from './compliance-test.js'

/** Two connected ends of one link. */
export interface SyncLinkPair {
  readonly a: SyncLink
  readonly b: SyncLink
  cleanup(): Promise<void>
}

export interface SyncLinkComplianceOptions {
  /** Size of the large-payload check (default 4 MiB; the protocol sends page batches of ~1 MiB). */
  readonly largePayloadBytes?: number
  /** How long to wait for a delivery or a close (default 5000 ms). */
  readonly timeoutMs?: number
}

/** Payload `i` of a check: distinct, of varied sizes (0 included), recognisable. */
function payload(i: number): Uint8Array {
  const size = i % 10 === 0 ? 0 : (i * 977) % 5000
  const b = new Uint8Array(size)
  for (let k = 0; k < size; k++) b[k] = (i * 31 + k) & 0xff
  return b
}

function equalBytes(x: Uint8Array, y: Uint8Array): boolean {
  return x.length === y.length && Buffer.from(x.buffer, x.byteOffset, x.length).equals(y)
}

/** Resolves with the first `n` messages `link` receives from now on; rejects after `ms`. */
function receive(link: SyncLink, n: number, ms: number): Promise<Uint8Array[]> {
  return new Promise((resolve, reject) => {
    const got: Uint8Array[] = []
    const timer = setTimeout(() => {
      link.off('message', on)
      reject(new Error(`received ${got.length} of ${n} messages within ${ms} ms`))
    }, ms)
    const on = (m: Uint8Array) => {
      got.push(Uint8Array.from(m))
      if (got.length < n) return
      clearTimeout(timer)
      link.off('message', on)
      resolve(got)
    }
    link.on('message', on)
  })
}

/** Resolves with the close events `link` emits within `ms` (the error of each, or null). */
function closes(link: SyncLink, ms: number): Promise<(Error | null)[]> {
  const seen: (Error | null)[] = []
  link.on('close', (e) => seen.push(e ?? null))
  return new Promise((r) => setTimeout(() => r(seen), ms))
}

/** Runs every check as a subtest of `t`; each subtest gets a fresh pair from `factory`. */
export async function runSyncLinkCompliance(
  t: ComplianceTest,
  factory: () => Promise<SyncLinkPair>,
  options: SyncLinkComplianceOptions = {},
): Promise<void> {
  const ms = options.timeoutMs ?? 5000
  const check = checkEach(t, factory)

  await check('both ends are open', async (t, { a, b }) => {
    t.ok(a.isOpen, 'a is open')
    t.ok(b.isOpen, 'b is open')
  })

  await check('payloads arrive whole and in send order, both ways (empty ones too)', async (t, { a, b }) => {
    const atB = receive(b, 100, ms)
    const atA = receive(a, 20, ms)
    for (let i = 0; i < 100; i++) await a.send(payload(i))
    for (let i = 0; i < 20; i++) await b.send(payload(1000 + i))
    // Together: a timeout of one must not leave the other's rejection unhandled.
    const [gotB, gotA] = await Promise.all([atB, atA])
    const badB = gotB.findIndex((m, i) => !equalBytes(m, payload(i)))
    const badA = gotA.findIndex((m, i) => !equalBytes(m, payload(1000 + i)))
    t.equal(badB, -1, 'a -> b: every payload intact and in order')
    t.equal(badA, -1, 'b -> a: every payload intact and in order')
  })

  await check('a large payload arrives whole', async (t, { a, b }) => {
    const big = new Uint8Array(options.largePayloadBytes ?? 4 * 1024 * 1024)
    for (let k = 0; k < big.length; k++) big[k] = (k * 7 + (k >> 12)) & 0xff
    const got = receive(b, 1, ms)
    await a.send(big)
    const [m] = await got
    t.ok(m !== undefined && equalBytes(m, big), `${big.length} bytes intact`)
  })

  await check('the sender may reuse its buffer once send() resolved', async (t, { a, b }) => {
    const got = receive(b, 2, ms)
    const buf = new Uint8Array(64).fill(1)
    await a.send(buf)
    buf.fill(2)
    await a.send(buf)
    const [first, second] = await got
    t.ok(
      first?.every((x) => x === 1),
      'the first payload is what was sent, not the reused buffer',
    )
    t.ok(
      second?.every((x) => x === 2),
      'the second payload too',
    )
  })

  await check('nothing is delivered from inside send()', async (t, { a, b }) => {
    let inSend = false
    let duringSend = 0
    const got = receive(b, 1, ms)
    b.on('message', () => {
      if (inSend) duringSend++
    })
    inSend = true
    const sent = a.send(payload(1))
    inSend = false
    await sent
    await got
    t.equal(duringSend, 0, 'the peer handler never ran synchronously inside send()')
  })

  await check('close: each end sees it once, and sending fails afterwards', async (t, { a, b }) => {
    const atA = closes(a, Math.min(ms, 1000))
    const atB = closes(b, Math.min(ms, 1000))
    a.close()
    a.close()
    const [seenA, seenB] = await Promise.all([atA, atB])
    t.equal(seenA.length, 1, `the closing end emitted close once (${seenA.length})`)
    t.equal(seenA[0], null, 'without an error: it closed itself')
    t.equal(seenB.length, 1, `the peer emitted close once (${seenB.length})`)
    t.ok(seenB[0] instanceof Error, `the peer's close carries an error (${seenB[0]?.message})`)
    t.ok(!a.isOpen && !b.isOpen, 'neither end is open')
    await t.rejects(a.send(payload(1)), /./, 'send on the closed end rejects')
    await t.rejects(b.send(payload(1)), /./, "send on the peer's end rejects")
  })

  await check('close(error): the closing end reports that error', async (t, { a }) => {
    const atA = closes(a, Math.min(ms, 500))
    const why = new Error('protocol violation (compliance check)')
    a.close(why)
    const seen = await atA
    t.equal(seen.length, 1, 'one close event')
    t.equal(seen[0], why, 'with the given error')
  })
}
