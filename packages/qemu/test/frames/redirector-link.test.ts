// RedirectorLink against a fake chardev server (QEMU's side is a unix-socket server).
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { EventEmitter } from 'eventemitter3'
import t from 'tap'
import { encodeFrame, FrameDecoder } from '../../src/frames/codec.js'
import { FrameChannelClosedError } from '../../src/frames/errors.js'
import { RedirectorLink } from '../../src/frames/redirector-link.js'

/** What the helpers use of a tap Test. */
// eventemitter3 emitters are not node:events emitters: a tiny once() for them.
// biome-ignore lint/suspicious/noExplicitAny: any event map
function nextEvent(emitter: EventEmitter<any>, event: string): Promise<unknown[]> {
  return new Promise((resolve) => emitter.once(event, (...args: unknown[]) => resolve(args)))
}

type Fixture = { teardown(fn: () => unknown): void }

async function fakeChardev(
  t: Fixture,
): Promise<{ path: string; server: Server; conns: Socket[]; next: () => Promise<Socket> }> {
  // WHY /tmp: sun_path holds 107 bytes, tap's testdir paths are longer.
  const dir = mkdtempSync(join(tmpdir(), 'plover-link-'))
  const path = join(dir, 'chardev.sock')
  const conns: Socket[] = []
  const server = createServer((s) => conns.push(s))
  await new Promise<void>((r) => server.listen(path, r))
  t.teardown(() => {
    for (const c of conns) c.destroy()
    server.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const next = async () => {
    const n = conns.length
    while (conns.length === n) await once(server, 'connection')
    return conns[n]
  }
  return { path, server, conns, next }
}

t.test('frames from QEMU arrive as events and are counted', async (t) => {
  const { path, next } = await fakeChardev(t)
  const link = new RedirectorLink({ path, role: 'from-qemu' })
  t.teardown(() => link.close())
  const got: Buffer[] = []
  link.on('frame', (f) => got.push(f))
  const conn = next()
  await link.open()
  const sent = [randomBytes(60), randomBytes(1514)]
  ;(await conn).write(Buffer.concat(sent.map((f) => encodeFrame(f))))
  while (got.length < 2) await nextEvent(link, 'frame')
  t.same(got, sent)
  t.equal(link.counters.frames, 2)
  t.equal(link.counters.bytes, 60 + 1514)
})

t.test('garbage drops the connection, counts it and reconnects running the hook', async (t) => {
  const { path, next } = await fakeChardev(t)
  let hooks = 0
  const link = new RedirectorLink({
    path,
    role: 'from-qemu',
    afterReconnect: async () => void hooks++,
    reconnectDelayMs: 5,
  })
  t.teardown(() => link.close())
  const first = next()
  await link.open()
  const second = next()
  ;(await first).write(Buffer.from('\xff\xff\xff\xffgarbage'))
  const [err] = await nextEvent(link, 'down')
  t.ok(err instanceof Error)
  await nextEvent(link, 'up')
  t.equal(link.counters.decodeErrors, 1)
  t.equal(link.counters.reconnects, 1)
  t.equal(hooks, 1)
  const got = nextEvent(link, 'frame')
  const f = randomBytes(70)
  ;(await second).write(encodeFrame(f))
  t.same((await got)[0], f, 'frames flow again on the new connection')
})

t.test('frames to QEMU are encoded; sending while disconnected is a typed drop', async (t) => {
  const { path, next } = await fakeChardev(t)
  const link = new RedirectorLink({ path, role: 'to-qemu' })
  t.teardown(() => link.close())
  const connP = next()
  await link.open()
  const conn = await connP
  const dec = new FrameDecoder()
  const got: Buffer[] = []
  conn.on('data', (c) => got.push(...dec.push(c)))
  const frames = [randomBytes(60), randomBytes(600)]
  for (const f of frames) await link.send(f)
  while (got.length < 2) await once(conn, 'data')
  t.same(got, frames)
  link.close()
  await t.rejects(link.send(frames[0]), FrameChannelClosedError)
  t.equal(link.counters.drops, 1)
})

t.test('send waits while QEMU does not read (backpressure)', async (t) => {
  const { path, next } = await fakeChardev(t)
  const link = new RedirectorLink({ path, role: 'to-qemu', highWaterBytes: 64 * 1024 })
  t.teardown(() => link.close())
  const connP = next()
  await link.open()
  const conn = await connP
  conn.pause()
  const frame = randomBytes(60000)
  let sent = 0
  let blocked = false
  for (let i = 0; i < 400 && !blocked; i++) {
    const p = link.send(frame).then(() => void sent++)
    const r = await Promise.race([
      p.then(() => 'sent'),
      new Promise((res) => setTimeout(() => res('blocked'), 50)),
    ])
    if (r === 'blocked') {
      blocked = true
      conn.resume() // the reader catches up: the pending send completes
      await p
    }
  }
  t.ok(blocked, `a send blocked after ${sent} frames`)
})
