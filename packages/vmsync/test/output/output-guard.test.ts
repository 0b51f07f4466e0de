// Output commit: held per epoch, released in order only when that epoch's sync commits;
// discarded on the backup; released at once (with an alarm) when no backup is alive.
import t from 'tap'
import { OutputGuard } from '../../src/output/output-guard.js'

const f = (s: string) => Buffer.from(s)

function guard(opts: { role?: 'primary' | 'backup'; protected?: boolean; maxHeldBytes?: number } = {}) {
  let now = 0
  const g = new OutputGuard({
    role: opts.role ?? 'primary',
    protected: opts.protected ?? true,
    ...(opts.maxHeldBytes ? { maxHeldBytes: opts.maxHeldBytes } : {}),
    now: () => now,
  })
  const out: string[] = []
  const events: string[] = []
  g.on('release', (fr) => out.push(Buffer.from(fr).toString()))
  g.on('unprotected', (r) => events.push(`unprotected:${r}`))
  g.on('protected', () => events.push('protected'))
  g.on('overflow', (held) => events.push(`overflow:${held}`))
  return { g, out, events, advance: (ms: number) => (now += ms) }
}

t.test('held per epoch, released in order on commit', async (t) => {
  const { g, out, advance } = guard()
  g.push(f('a1'))
  g.push(f('a2'))
  advance(7)
  g.seal(1)
  g.push(f('b1')) // produced after the pause for sync 1: belongs to sync 2
  t.same(out, [], 'nothing released before a commit')
  t.same(g.stats().heldFrames, 3)
  t.same(g.stats().heldBytes, 6)
  t.equal(g.stats().oldestHeldAgeMs, 7, 'oldest held age')
  g.release(1)
  t.same(out, ['a1', 'a2'], 'epoch 1 released, in order')
  t.equal(g.stats().heldFrames, 1, 'epoch 2 still held')
  g.release(1)
  t.same(out, ['a1', 'a2'], 'a repeated commit releases nothing new')
  g.seal(2)
  g.push(f('c1'))
  g.seal(3)
  g.release(3)
  t.same(out, ['a1', 'a2', 'b1', 'c1'], 'a later commit releases every earlier epoch too')
  t.equal(g.stats().heldFrames, 0)
  t.equal(g.stats().oldestHeldAgeMs, 0)
})

t.test('unsealed frames are never released by a commit', async (t) => {
  const { g, out } = guard()
  g.push(f('x'))
  g.release(99)
  t.same(out, [], 'frame produced after the last pause waits for its own sync')
})

t.test('backup discards everything', async (t) => {
  const { g, out } = guard({ role: 'backup' })
  g.push(f('x'))
  g.seal(1)
  g.release(1)
  t.same(out, [])
  t.equal(g.stats().discardedFrames, 1)
})

t.test(
  'no backup: flush held frames in order, pass through, alarm once; protected again later',
  async (t) => {
    const { g, out, events } = guard()
    g.push(f('a'))
    g.seal(1)
    g.push(f('b'))
    g.unprotect('backup link down')
    t.same(out, ['a', 'b'], 'held frames flushed in order')
    g.push(f('c'))
    t.same(out, ['a', 'b', 'c'], 'released immediately while unprotected')
    g.unprotect('still down')
    t.same(events, ['unprotected:backup link down'], 'one alarm per unprotected period')
    g.protect()
    g.push(f('d'))
    t.same(out, ['a', 'b', 'c'], 'held again once protected')
    t.same(events, ['unprotected:backup link down', 'protected'])
    t.equal(g.stats().isProtected, true)
  },
)

t.test('stepping down drops held outputs (never released by a deposed primary)', async (t) => {
  const { g, out, events } = guard()
  g.push(f('a'))
  g.seal(1)
  g.setRole('backup')
  g.release(1)
  t.same(out, [])
  t.equal(g.stats().discardedFrames, 1)
  g.setRole('primary')
  t.match(events.at(-1), /^unprotected:/, 'a new primary starts unprotected, with an alarm')
  g.push(f('z'))
  t.same(out, ['z'])
})

t.test(
  'held bytes are bounded: past maxHeldBytes frames are dropped and counted, then held again once released',
  async (t) => {
    const { g, out, events } = guard({ maxHeldBytes: 6 })
    g.push(f('a1'))
    g.push(f('a2'))
    g.push(f('a3'))
    g.push(f('a4')) // 8 bytes would be held: dropped
    g.push(f('a5'))
    t.same(events, ['overflow:6'], 'one overflow alarm for the period')
    t.match(g.stats(), { heldFrames: 3, heldBytes: 6, droppedFrames: 2, droppedBytes: 4, emittedFrames: 5 })
    g.seal(1)
    g.release(1)
    t.same(out, ['a1', 'a2', 'a3'], 'what was held is released in order; the dropped frames never are')
    g.push(f('b1'))
    g.push(f('b2'))
    g.push(f('b3'))
    g.push(f('b4'))
    t.same(events, ['overflow:6', 'overflow:6'], 'a new period raises a new alarm')
    g.seal(2)
    g.release(2)
    t.same(out, ['a1', 'a2', 'a3', 'b1', 'b2', 'b3'])
    t.equal(g.stats().droppedFrames, 3)
  },
)

t.test(
  'the bound applies only to held frames: unprotected output passes through whatever its size',
  async (t) => {
    const { g, out } = guard({ protected: false, maxHeldBytes: 1 })
    g.push(f('big frame'))
    t.same(out, ['big frame'])
    t.equal(g.stats().droppedFrames, 0)
  },
)

t.test('maxHeldBytes must be positive', async (t) => {
  t.throws(() => new OutputGuard({ role: 'primary', maxHeldBytes: 0 }), RangeError)
})
