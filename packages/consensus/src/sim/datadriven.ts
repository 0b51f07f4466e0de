// Parser/printer for scenario scripts (etcd's datadriven format, simplified):
//
//   # comment lines (kept verbatim on rewrite)
//   command args...
//   ----
//   expected output, up to the next blank line
//
// Output never contains blank lines, so a blank line always ends a block.

export interface Block {
  /** 1-based line of the command, for error messages. */
  line: number
  command: string
  expected: string
  /** Comment/blank lines that precede this block, kept for rewriting. */
  preamble: string[]
}

export interface Script {
  blocks: Block[]
  /** Lines after the last block. */
  trailer: string[]
}

export function parseScript(text: string): Script {
  const lines = text.split('\n')
  const blocks: Block[] = []
  let preamble: string[] = []
  let i = 0
  while (i < lines.length) {
    const l = lines[i]
    if (l.trim() === '' || l.startsWith('#')) {
      preamble.push(l)
      i++
      continue
    }
    const line = i + 1
    const command = l.trim()
    i++
    if (lines[i] !== '----') throw new Error(`line ${line}: expected ---- after "${command}"`)
    i++
    const out: string[] = []
    while (i < lines.length && lines[i] !== '') out.push(lines[i++])
    blocks.push({ line, command, expected: out.join('\n'), preamble })
    preamble = []
  }
  while (preamble.length > 0 && preamble[preamble.length - 1] === '') preamble.pop()
  return { blocks, trailer: preamble }
}

export function printScript(s: Script, actual: readonly string[]): string {
  const out: string[] = []
  s.blocks.forEach((b, k) => {
    out.push(...b.preamble, b.command, '----', actual[k])
  })
  out.push(...s.trailer)
  return `${out.join('\n')}\n`
}

/** `key=value` and `key=(a,b c)` arguments after positional ones. */
export function parseArgs(command: string): {
  name: string
  positional: string[]
  named: Map<string, string>
} {
  const tokens: string[] = []
  const re = /(\S+=\([^)]*\)|"[^"]*"|\S+)/g
  for (const m of command.matchAll(re)) tokens.push(m[0])
  const [name, ...rest] = tokens
  const positional: string[] = []
  const named = new Map<string, string>()
  for (const t of rest) {
    const eq = t.indexOf('=')
    if (eq > 0 && !t.startsWith('"')) named.set(t.slice(0, eq), t.slice(eq + 1))
    else positional.push(t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1) : t)
  }
  return { name, positional, named }
}

/** `(1,2 3)` or `1,2` → [1, 2, 3]. */
export function parseIdList(v: string | undefined): number[] {
  if (!v) return []
  return v
    .replace(/[()]/g, '')
    .split(/[\s,]+/)
    .filter((x) => x !== '')
    .map((x) => {
      const n = Number(x)
      if (!Number.isInteger(n) || n <= 0) throw new Error(`bad node id "${x}"`)
      return n
    })
}
