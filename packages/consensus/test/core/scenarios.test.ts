// Runs every script in testdata/ through the interaction interpreter and compares traces.
// PLOVER_REWRITE=1 regenerates the expected output (read the diff before accepting it!).
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parseScript, printScript } from '../../src/sim/datadriven.js'
import { InteractionEnv } from '../../src/sim/interaction.js'

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'testdata')
const rewrite = process.env.PLOVER_REWRITE === '1'
const only = process.env.PLOVER_SCENARIO

const files = readdirSync(dir).filter((f) => f.endsWith('.txt') && (!only || f.includes(only)))

t.ok(files.length >= 8, 'scenario scripts exist')

for (const file of files) {
  t.test(file, async (t) => {
    const path = join(dir, file)
    const text = readFileSync(path, 'utf8')
    t.match(text, /^#/, 'script starts with a comment saying what it proves')
    const script = parseScript(text)
    const env = new InteractionEnv()
    const actual: string[] = []
    for (const b of script.blocks) {
      let got: string
      try {
        got = env.handle(b.command)
      } catch (err) {
        got = `panic: ${(err as Error).message}`
      }
      actual.push(got)
      if (!rewrite) t.equal(got, b.expected, `${file}:${b.line} ${b.command}`)
    }
    if (rewrite) writeFileSync(path, printScript(script, actual))
  })
}
