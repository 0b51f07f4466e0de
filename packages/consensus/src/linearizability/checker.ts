// Linearizability checker in the style of Porcupine: Wing & Gong's backtracking search with
// Lowe's memoization of (set of linearized operations, model state), run per partition.
import type { Model, Operation } from './model.js'

export type CheckResult =
  | { ok: true }
  | { ok: false; timedOut: false; partition: number; operations: number }
  | { ok: false; timedOut: true; partition: number; operations: number }

interface Node<I, O> {
  kind: 'call' | 'ret'
  id: number
  op: Operation<I, O>
  /** call → its ret node. */
  match: Node<I, O> | undefined
  prev: Node<I, O> | undefined
  next: Node<I, O> | undefined
}

export interface CheckOptions {
  /** Give up (result timedOut) after this many search steps per partition. */
  maxSteps?: number
}

export function checkOperations<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly Operation<I, O>[],
  opts: CheckOptions = {},
): CheckResult {
  const parts = model.partition ? model.partition(ops) : [ops.slice()]
  for (let p = 0; p < parts.length; p++) {
    const r = checkSingle(model, parts[p], opts.maxSteps ?? 5_000_000)
    if (r !== true)
      return {
        ok: false,
        timedOut: r === 'timeout',
        partition: p,
        operations: parts[p].length,
      } as CheckResult
  }
  return { ok: true }
}

function checkSingle<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly Operation<I, O>[],
  maxSteps: number,
): boolean | 'timeout' {
  if (ops.length === 0) return true
  const head = buildList(ops)
  const words = Math.ceil(ops.length / 32)
  const linearized = new Uint32Array(words)
  const cache = new Set<string>()
  const calls: { node: Node<I, O>; state: S }[] = []
  let state = model.init()
  let entry = head.next
  let steps = 0
  while (head.next !== undefined) {
    if (++steps > maxSteps) return 'timeout'
    if (entry === undefined) return false
    if (entry.kind === 'call') {
      const r = model.step(state, entry.op.input, entry.op.output)
      if (r.ok) {
        setBit(linearized, entry.id)
        const key = `${linearized.join(',')}|${model.key(r.state)}`
        if (!cache.has(key)) {
          // Tentatively linearize this op here and restart from the first remaining event.
          cache.add(key)
          calls.push({ node: entry, state })
          state = r.state
          lift(entry)
          entry = head.next
          continue
        }
        clearBit(linearized, entry.id)
      }
      entry = entry.next
    } else {
      // A return with its call not yet linearized: backtrack.
      const top = calls.pop()
      if (!top) return false
      state = top.state
      clearBit(linearized, top.node.id)
      unlift(top.node)
      entry = top.node.next
    }
  }
  return true
}

/** Doubly linked list of call/return events in time order, behind a sentinel head. */
function buildList<I, O>(ops: readonly Operation<I, O>[]): Node<I, O> {
  const events: { t: number; node: Node<I, O> }[] = []
  ops.forEach((op, id) => {
    const ret: Node<I, O> = { kind: 'ret', id, op, match: undefined, prev: undefined, next: undefined }
    const call: Node<I, O> = { kind: 'call', id, op, match: ret, prev: undefined, next: undefined }
    events.push({ t: op.call, node: call }, { t: op.ret, node: ret })
  })
  // Pending operations (ret = Infinity) sort last; ties (only possible among them) keep calls first.
  events.sort((a, b) => a.t - b.t || (a.node.kind === 'call' ? -1 : 1))
  const head: Node<I, O> = {
    kind: 'call',
    id: -1,
    op: ops[0],
    match: undefined,
    prev: undefined,
    next: undefined,
  }
  let prev = head
  for (const e of events) {
    prev.next = e.node
    e.node.prev = prev
    prev = e.node
  }
  return head
}

function lift<I, O>(call: Node<I, O>): void {
  unlink(call)
  if (call.match) unlink(call.match)
}

function unlink<I, O>(n: Node<I, O>): void {
  if (n.prev) n.prev.next = n.next
  if (n.next) n.next.prev = n.prev
}

function unlift<I, O>(call: Node<I, O>): void {
  // Re-insert in reverse order of removal: the return first, then the call.
  const ret = call.match
  if (ret) relink(ret)
  relink(call)
}

function relink<I, O>(n: Node<I, O>): void {
  if (n.prev) n.prev.next = n
  if (n.next) n.next.prev = n
}

function setBit(b: Uint32Array, i: number): void {
  b[i >>> 5] |= 1 << (i & 31)
}

function clearBit(b: Uint32Array, i: number): void {
  b[i >>> 5] &= ~(1 << (i & 31))
}
