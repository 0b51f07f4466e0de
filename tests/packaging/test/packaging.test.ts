// Every publishable package as a user gets it: `pnpm pack` (workspace: ranges become versions),
// the tarball's manifest and files checked, then `npm install` of the tarballs into a fresh
// project — npm's defaults, so install scripts stay blocked as npm 11 does: xxhash-addon must
// load its prebuild and @plover/mapped-file stays unbuilt (vmsync falls back to pread) — and a
// strict TypeScript consumer (consumer/main.ts) compiled against the installed type
// declarations and run. Needs the packages built (CI builds first) and the npm registry for the
// third-party dependencies.
import { execFile } from 'node:child_process'
import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'

const run = promisify(execFile)
const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..', '..')
const PACKAGES = ['consensus', 'idle-monitor', 'mapped-file', 'vmsync', 'qemu']

interface Manifest {
  name: string
  files?: string[]
  exports?: Record<string, { types?: string; import?: string }>
  dependencies?: Record<string, string>
  optionalDependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
}

const work = mkdtempSync(join(tmpdir(), 'plover-packaging-'))
t.teardown(() => rmSync(work, { recursive: true, force: true }))
const packs = join(work, 'packs')

t.test('each package packs into a self-contained, typed tarball', async (t) => {
  for (const p of PACKAGES) {
    await run('pnpm', ['pack', '--pack-destination', packs], { cwd: join(root, 'packages', p) })
  }
  const tarballs = readdirSync(packs).filter((f) => f.endsWith('.tgz'))
  t.equal(tarballs.length, PACKAGES.length, 'one tarball per package')
  for (const tgz of tarballs) {
    const path = join(packs, tgz)
    const files = new Set((await run('tar', ['-tzf', path])).stdout.split('\n').filter(Boolean))
    const m = JSON.parse((await run('tar', ['-xzOf', path, 'package/package.json'])).stdout) as Manifest
    t.ok(files.has('package/README.md'), `${m.name}: README in the tarball`)
    const ranges = { ...m.dependencies, ...m.optionalDependencies, ...m.peerDependencies }
    const unresolved = Object.entries(ranges).filter(([, v]) => v.startsWith('workspace:'))
    t.same(unresolved, [], `${m.name}: no workspace: ranges left`)
    for (const [sub, e] of Object.entries(m.exports ?? {})) {
      for (const f of [e.types, e.import]) {
        t.ok(
          f && files.has(`package/${f.replace(/^\.\//, '')}`),
          `${m.name} exports["${sub}"] → ${f} is packed`,
        )
      }
    }
  }
})

t.test('a fresh npm project installs the tarballs and a strict consumer compiles and runs', async (t) => {
  const app = join(work, 'app')
  rmSync(app, { recursive: true, force: true })
  const { mkdirSync } = await import('node:fs')
  mkdirSync(app)
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'consumer', type: 'module', private: true }),
  )
  const tarballs = readdirSync(packs)
    .filter((f) => f.endsWith('.tgz'))
    .map((f) => join(packs, f))
  await run('npm', ['install', '--no-audit', '--no-fund', ...tarballs], { cwd: app, timeout: 300_000 }).catch(
    (err: Error & { stderr?: string }) => {
      throw new Error(
        `npm install of the tarballs failed (is the npm registry reachable?): ${err.stderr ?? err.message}`,
      )
    },
  )
  copyFileSync(join(here, '..', 'consumer', 'main.ts'), join(app, 'main.ts'))
  // The compiler and Node's types come from the workspace; everything @plover from the install.
  const require = createRequire(import.meta.url)
  const tsc = join(dirname(require.resolve('typescript/package.json')), 'bin', 'tsc')
  const nodeTypes = dirname(dirname(require.resolve('@types/node/package.json')))
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        skipLibCheck: false,
        outDir: 'out',
        typeRoots: [nodeTypes],
        types: ['node'],
      },
      include: ['main.ts'],
    }),
  )
  const compiled = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app }).catch(
    (err: Error & { stdout?: string }) => ({ error: err.stdout ?? err.message }),
  )
  t.notOk('error' in compiled && compiled.error, 'the consumer type-checks against the packed declarations')
  const { stdout } = await run(process.execPath, ['out/main.js'], { cwd: app, timeout: 60_000 })
  const out = JSON.parse(stdout.trim().split('\n').pop()!) as {
    promoted: { trusted: boolean; freshLog: boolean }
    role: string
    digestBytes: number
    loaded: string[]
  }
  t.same(out.promoted, { trusted: true, freshLog: true }, 'the gate promoted the fresh VM of a fresh log')
  t.equal(out.role, 'primary')
  t.equal(out.digestBytes, 32, 'xxhash-addon hashed two pages (its prebuild loads without install scripts)')
  t.same(out.loaded, ['function', 'function', 'function'], '@plover/qemu and the compliance entry point load')
})
