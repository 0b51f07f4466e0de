#!/usr/bin/env node
// Runs every workspace package's tests one package at a time (2 cores: QEMU guests must not
// compete), streams their output, and ends with one summary line 'N passed, N failed'.
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const dirs = [
  'packages/consensus',
  'packages/mapped-file',
  'packages/idle-monitor',
  'packages/vmsync',
  'packages/qemu',
  'examples/replicated-kv',
  'examples/qemu-redis',
  'tests/packaging',
]
let passed = 0
let failed = 0
let skipped = 0
const failures = []

for (const dir of dirs) {
  const pkgPath = join(root, dir, 'package.json')
  if (!existsSync(pkgPath)) continue
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8'))
  if (!pkg.scripts?.test) continue
  console.log(`\n### ${pkg.name}`)
  const { code, out } = await run('pnpm', ['test'], join(root, dir))
  // tap's closing line: '# { total: 12, pass: 11, fail: 1, skip: 0 }'
  const m = [
    ...out.matchAll(
      /# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?(?:, todo: \d+)?(?:, skip: (\d+))? \}/g,
    ),
  ].pop()
  const p = m ? Number(m[2] ?? 0) : 0
  const f = m ? Number(m[3] ?? 0) : 0
  passed += p
  failed += f
  skipped += m ? Number(m[4] ?? 0) : 0
  if (code !== 0 || !m) {
    failures.push(`${pkg.name} (exit ${code}${m ? '' : ', no tap summary'})`)
    if (f === 0) failed += 1
  }
}
if (failures.length) console.log(`\nfailing packages: ${failures.join(', ')}`)
console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`)
process.exit(failed > 0 ? 1 : 0)

function run(cmd, args, cwd) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
      process.stdout.write(d)
    })
    child.on('close', (code) => resolve({ code, out }))
  })
}
