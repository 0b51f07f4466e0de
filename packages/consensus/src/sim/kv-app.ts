// The simulation's replicated application: a key-value store whose commands are log entries.
// Deterministic, so every replica that applies the same log reaches the same state.
import type { KvInput } from '../linearizability/kv.js'

export interface KvCommand {
  /** Unique operation id (client history bookkeeping). */
  id: number
  input: KvInput
}

const enc = new TextEncoder()
const dec = new TextDecoder()

export function encodeCommand(c: KvCommand): Uint8Array {
  return enc.encode(JSON.stringify(c))
}

export function decodeCommand(data: Uint8Array): KvCommand {
  return JSON.parse(dec.decode(data)) as KvCommand
}

export class KvApp {
  private data = new Map<string, string>()

  /** Applies a command and returns its result ('' for writes). */
  apply(c: KvCommand): string {
    const i = c.input
    const cur = this.data.get(i.key) ?? ''
    switch (i.op) {
      case 'get':
        return cur
      case 'put':
        this.data.set(i.key, i.value)
        return ''
      case 'append':
        this.data.set(i.key, cur + i.value)
        return ''
    }
  }

  snapshot(): Uint8Array {
    return enc.encode(JSON.stringify([...this.data].sort()))
  }

  static restore(data: Uint8Array): KvApp {
    const app = new KvApp()
    if (data.length > 0) app.data = new Map(JSON.parse(dec.decode(data)) as [string, string][])
    return app
  }
}
