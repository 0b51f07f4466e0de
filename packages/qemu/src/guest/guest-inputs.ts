import { createHash } from 'node:crypto'
import { readFileSync, realpathSync } from 'node:fs'
import { runCommand } from '../launch/run-command.js'
import { GUEST_MODULES, GUEST_REDIS_CONF, guestInitScript } from './init-script.js'

/** Bump when the builder's output changes for the same packages (invalidates every cached image). */
// 2: redis.conf enables DEBUG (DEBUG DIGEST).
// 3: init applies plover.sysctl.K=V and plover.redis.N=V from the kernel command line.
export const GUEST_BUILDER_VERSION = 3

/** A host file copied into the initramfs. */
export interface GuestFile {
  /** Absolute path inside the guest. */
  readonly dest: string
  /** Host path to read (symlinks resolved). */
  readonly source: string
  readonly sha256: string
}

/** Everything the image depends on; its hash is the cache key. */
export interface GuestInputs {
  readonly builderVersion: number
  readonly kernelPackage: string
  readonly kernelVersion: string
  readonly busyboxVersion: string
  readonly redisVersion: string
  readonly modules: readonly string[]
  readonly initScript: string
  readonly redisConf: string
  readonly files: readonly GuestFile[]
}

const BUSYBOX = '/bin/busybox'
const REDIS_SERVER = '/usr/bin/redis-server'

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex')
}

async function installedVersion(pkg: string): Promise<string> {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
  const r = await runCommand('dpkg-query', ['-W', '-f=${Version}', pkg], { check: false })
  if (r.code !== 0 || !r.stdout) throw new Error(`package ${pkg} is not installed (apt-get install ${pkg})`)
  return r.stdout.trim()
}

/** `linux-image-amd64` is a metapackage: find the versioned image package it depends on. */
async function resolveKernelPackage(): Promise<{ name: string; version: string } | undefined> {
  const deps = await runCommand('apt-cache', ['depends', 'linux-image-amd64'], { check: false })
  const name = /Depends:\s*(linux-image-[0-9][^\s]*)/.exec(deps.stdout)?.[1]
  if (!name) return undefined
  const show = await runCommand('apt-cache', ['show', '--no-all-versions', name], { check: false })
  const version = /^Version:\s*(\S+)/m.exec(show.stdout)?.[1]
  return version ? { name, version } : undefined
}

/** Parses `ldd` output into absolute library paths (including the dynamic loader). */
export function parseLdd(output: string): string[] {
  const libs: string[] = []
  for (const line of output.split('\n')) {
    const arrow = /=>\s*(\/\S+)/.exec(line)
    if (arrow) libs.push(arrow[1])
    else {
      const bare = /^\s*(\/\S+)\s+\(/.exec(line)
      if (bare) libs.push(bare[1])
    }
  }
  return libs
}

/**
 * Resolves package versions and host file hashes. Runs `apt-get update` once when the apt lists
 * don't know `linux-image-amd64` (fresh CI images ship without lists).
 */
export async function resolveGuestInputs(log: (msg: string) => void = () => {}): Promise<GuestInputs> {
  let kernel = await resolveKernelPackage()
  if (!kernel) {
    log('apt lists do not resolve linux-image-amd64: running apt-get update')
    await runCommand('apt-get', ['update', '-qq'], { timeoutMs: 300_000 })
    kernel = await resolveKernelPackage()
    if (!kernel) throw new Error('cannot resolve linux-image-amd64 to a versioned kernel package')
  }
  const busyboxVersion = await installedVersion('busybox-static')
  const redisVersion = await installedVersion('redis-server')
  const ldd = await runCommand('ldd', [REDIS_SERVER])
  const sources: Array<[dest: string, source: string]> = [
    [BUSYBOX, BUSYBOX],
    // WHY rename: /usr/bin/redis-server links to redis-check-rdb, and redis picks its mode from argv[0].
    [REDIS_SERVER, realpathSync(REDIS_SERVER)],
    ...parseLdd(ldd.stdout).map((lib): [string, string] => [lib, realpathSync(lib)]),
  ]
  const files = sources.map(([dest, source]) => ({ dest, source, sha256: sha256File(source) }))
  return {
    builderVersion: GUEST_BUILDER_VERSION,
    kernelPackage: kernel.name,
    kernelVersion: kernel.version,
    busyboxVersion,
    redisVersion,
    modules: [...GUEST_MODULES],
    initScript: guestInitScript(),
    redisConf: GUEST_REDIS_CONF,
    files,
  }
}

/** Content key of the inputs: same inputs → same directory → no rebuild. */
export function guestInputsKey(inputs: GuestInputs): string {
  const stable = { ...inputs, files: inputs.files.map((f) => ({ dest: f.dest, sha256: f.sha256 })) }
  return createHash('sha256').update(JSON.stringify(stable)).digest('hex').slice(0, 20)
}
