// The linearizability checker on hand-written histories with known answers, and against a
// brute-force oracle (try every order consistent with real time) on random small histories.
import t from 'tap'
import { checkOperations } from '../../src/linearizability/checker.js'
import { type KvInput, type KvOperation, kvModel } from '../../src/linearizability/kv.js'

function op(client: number, call: number, ret: number, input: KvInput, value = ''): KvOperation {
  return { client, call, ret, input, output: { value } }
}
const put = (k: string, v: string): KvInput => ({ op: 'put', key: k, value: v })
const app = (k: string, v: string): KvInput => ({ op: 'append', key: k, value: v })
const get = (k: string): KvInput => ({ op: 'get', key: k })

t.test('known linearizable histories', async (t) => {
  t.ok(checkOperations(kvModel, []).ok, 'empty')
  t.ok(
    checkOperations(kvModel, [op(0, 0, 10, put('x', '1')), op(1, 5, 15, get('x'), '1')]).ok,
    'read overlapping a write sees it',
  )
  t.ok(checkOperations(kvModel, [op(0, 0, 10, put('x', '1')), op(1, 5, 15, get('x'), '')]).ok, 'or does not')
  t.ok(
    checkOperations(kvModel, [
      op(0, 0, 10, app('x', 'a')),
      op(1, 1, 9, app('x', 'b')),
      op(2, 11, 12, get('x'), 'ba'),
      op(2, 13, 14, get('x'), 'ba'),
    ]).ok,
    'concurrent appends in either order',
  )
  t.ok(
    checkOperations(kvModel, [op(0, 0, Number.POSITIVE_INFINITY, put('x', '1')), op(1, 5, 6, get('x'), '1')])
      .ok,
    'a pending write may have taken effect',
  )
  t.ok(
    checkOperations(kvModel, [
      op(0, 0, 3, put('x', '1')),
      op(1, 4, 5, put('y', '2')),
      op(2, 6, 7, get('y'), '2'),
    ]).ok,
    'keys are independent',
  )
})

t.test('known non-linearizable histories', async (t) => {
  t.notOk(checkOperations(kvModel, [op(0, 0, 5, put('x', '1')), op(1, 6, 10, get('x'), '')]).ok, 'stale read')
  t.notOk(
    checkOperations(kvModel, [
      op(0, 0, 10, put('x', '1')),
      op(1, 0, 10, put('x', '2')),
      op(2, 11, 12, get('x'), '1'),
      op(2, 13, 14, get('x'), '2'),
    ]).ok,
    'value changes after all writes completed',
  )
  t.notOk(
    checkOperations(kvModel, [
      op(0, 0, 10, app('x', 'a')),
      op(1, 1, 9, app('x', 'b')),
      op(2, 11, 12, get('x'), 'a'),
    ]).ok,
    'lost append',
  )
  t.notOk(checkOperations(kvModel, [op(0, 0, 1, get('x'), 'zz')]).ok, 'value from nowhere')
  t.notOk(
    checkOperations(kvModel, [
      op(0, 0, 2, put('x', '1')),
      op(1, 3, 4, put('x', '2')),
      op(2, 5, 6, get('x'), '1'),
    ]).ok,
    'sequential writes reordered',
  )
})

// Oracle: a history is linearizable iff some permutation respecting real time is legal.
function bruteForce(ops: KvOperation[]): boolean {
  const byKey = kvModel.partition?.(ops) ?? [ops]
  return byKey.every((part) => {
    const used = new Array<boolean>(part.length).fill(false)
    const search = (state: string, done: number): boolean => {
      if (done === part.length) return true
      for (let i = 0; i < part.length; i++) {
        if (used[i]) continue
        // i may go next only if no unused op returned before i was called.
        if (part.some((o, j) => !used[j] && j !== i && o.ret < part[i].call)) continue
        const r = kvModel.step(state, part[i].input, part[i].output)
        if (!r.ok) continue
        used[i] = true
        if (search(r.state, done + 1)) return true
        used[i] = false
      }
      return false
    }
    return search('', 0)
  })
}

function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

t.test('agrees with a brute-force oracle on random histories', async (t) => {
  let yes = 0
  let no = 0
  for (let seed = 1; seed <= 400; seed++) {
    const r = rng(seed)
    const n = 2 + Math.floor(r() * 5)
    // Execute sequentially against a real store at random linearization points, then widen
    // intervals at random; finally perturb some results so that some histories are illegal.
    const store = new Map<string, string>()
    const ops: KvOperation[] = []
    let clock = 0
    for (let i = 0; i < n; i++) {
      const key = r() < 0.7 ? 'x' : 'y'
      const kind = r()
      const point = (clock += 10)
      const call = point - Math.floor(r() * 25)
      const ret = point + Math.floor(r() * 25) + 1
      const cur = store.get(key) ?? ''
      if (kind < 0.4) {
        const perturb = r() < 0.25
        ops.push(op(i, call, ret, get(key), perturb ? `${cur}?` : cur))
      } else if (kind < 0.7) {
        const v = String(i)
        store.set(key, v)
        ops.push(op(i, call, ret, put(key, v)))
      } else {
        const v = String.fromCharCode(97 + i)
        store.set(key, cur + v)
        ops.push(op(i, call, ret, app(key, v)))
      }
    }
    // Unique timestamps (the checker's contract): break ties by a tiny per-op offset.
    ops.forEach((o, i) => {
      o.call += i / 100
      o.ret += i / 100 + 0.001
    })
    const expected = bruteForce(ops)
    const got = checkOperations(kvModel, ops).ok
    if (got !== expected) t.fail(`seed ${seed}: checker says ${got}, oracle says ${expected}`)
    if (expected) yes++
    else no++
  }
  t.ok(yes > 50 && no > 50, `both outcomes exercised (${yes} linearizable, ${no} not)`)
})
