// Model of a key-value store with put/get/append, partitioned per key (operations on
// different keys commute, so each key's sub-history is checked on its own).
import type { Model, Operation } from './model.js'

export type KvInput =
  | { op: 'put'; key: string; value: string }
  | { op: 'append'; key: string; value: string }
  | { op: 'get'; key: string }

/** get: the value read ('' if absent); put/append: ''. */
export interface KvOutput {
  value: string
}

export type KvOperation = Operation<KvInput, KvOutput>

export const kvModel: Model<string, KvInput, KvOutput> = {
  init: () => '',
  step(state, input, output) {
    switch (input.op) {
      case 'get':
        return { ok: output.value === state, state }
      case 'put':
        return { ok: true, state: input.value }
      case 'append':
        return { ok: true, state: state + input.value }
    }
  },
  key: (s) => s,
  partition(ops) {
    const byKey = new Map<string, KvOperation[]>()
    for (const op of ops) {
      const list = byKey.get(op.input.key)
      if (list) list.push(op)
      else byKey.set(op.input.key, [op])
    }
    return [...byKey.values()]
  },
  describe(op) {
    const i = op.input
    const what =
      i.op === 'get'
        ? `get(${i.key}) -> ${JSON.stringify(op.output.value)}`
        : `${i.op}(${i.key}, ${JSON.stringify(i.value)})`
    return `client ${op.client} [${op.call}, ${op.ret}] ${what}`
  },
}
