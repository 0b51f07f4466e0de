import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { type Entry, EntryType } from '../../src/core/types.js'

export function tempDir(t: Test, prefix = 'plover-wal-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export function entries(from: number, to: number, term: number, size = 16): Entry[] {
  const out: Entry[] = []
  for (let i = from; i <= to; i++) {
    const data = new Uint8Array(size).fill(i & 0xff)
    out.push({ term, index: i, type: EntryType.Normal, data })
  }
  return out
}

export const brief = (es: readonly Entry[]) => es.map((e) => `${e.index}/${e.term}`).join(' ')
