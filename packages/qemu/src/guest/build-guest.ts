import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { chmod } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { runCommand } from '../launch/run-command.js'
import { defaultGuestCacheDir } from './cache-dir.js'
import { type GuestImage, type GuestManifest, LATEST_FILE, openGuestImage } from './guest-image.js'
import { type GuestInputs, guestInputsKey, resolveGuestInputs } from './guest-inputs.js'

export interface BuildGuestOptions {
  /** Cache root (default `$PLOVER_GUEST_DIR` or `<repo>/.cache/guest`). */
  readonly cacheDir?: string
  /** Rebuild even when an image with the same key exists. */
  readonly force?: boolean
  /** Progress lines (default: silent). */
  readonly log?: (msg: string) => void
}

export interface BuildGuestResult {
  readonly image: GuestImage
  /** False when the cache already held an image for the same inputs (a no-op). */
  readonly built: boolean
  readonly durationMs: number
}

/** Finds a file by name anywhere under `root` (module trees are a few thousand entries). */
function findFile(root: string, names: readonly string[]): string | undefined {
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    const path = join(root, entry.name)
    if (entry.isDirectory()) {
      const found = findFile(path, names)
      if (found) return found
    } else if (names.includes(entry.name)) return path
  }
  return undefined
}

/** Copies a kernel module, decompressing `.ko.xz`/`.ko.zst` (busybox insmod wants plain ELF). */
async function copyModule(src: string, dest: string): Promise<void> {
  if (src.endsWith('.ko')) return copyFileSync(src, dest)
  const tool = src.endsWith('.xz') ? 'xz' : 'zstd'
  await runCommand('sh', ['-c', `${tool} -dc "$1" > "$2"`, 'sh', src, dest])
}

async function extractKernel(inputs: GuestInputs, work: string, staging: string, outDir: string) {
  const debDir = join(work, 'deb')
  mkdirSync(debDir)
  await runCommand('apt-get', ['download', `${inputs.kernelPackage}=${inputs.kernelVersion}`], {
    cwd: debDir,
    timeoutMs: 600_000,
  })
  const deb = readdirSync(debDir).find((f) => f.endsWith('.deb'))
  if (!deb) throw new Error(`apt-get download ${inputs.kernelPackage} produced no .deb`)
  const root = join(work, 'kernel')
  await runCommand('dpkg', ['-x', join(debDir, deb), root], { timeoutMs: 300_000 })
  const vmlinuz = readdirSync(join(root, 'boot')).find((f) => f.startsWith('vmlinuz-'))
  if (!vmlinuz) throw new Error(`${inputs.kernelPackage} has no /boot/vmlinuz-*`)
  copyFileSync(join(root, 'boot', vmlinuz), join(outDir, 'vmlinuz'))
  const modDest = join(staging, 'lib', 'modules', 'plover')
  mkdirSync(modDest, { recursive: true })
  for (const m of inputs.modules) {
    const src = findFile(join(root, 'lib', 'modules'), [`${m}.ko`, `${m}.ko.xz`, `${m}.ko.zst`])
    if (!src) throw new Error(`module ${m} not found in ${inputs.kernelPackage}`)
    await copyModule(src, join(modDest, `${m}.ko`))
  }
}

async function stageUserland(inputs: GuestInputs, staging: string): Promise<void> {
  for (const d of ['bin', 'dev', 'proc', 'sys', 'tmp', 'run', 'etc', 'usr/bin']) {
    mkdirSync(join(staging, d), { recursive: true })
  }
  for (const f of inputs.files) {
    const dest = join(staging, f.dest)
    mkdirSync(dirname(dest), { recursive: true })
    copyFileSync(f.source, dest)
    await chmod(dest, 0o755)
  }
  writeFileSync(join(staging, 'init'), inputs.initScript, { mode: 0o755 })
  writeFileSync(join(staging, 'etc', 'redis.conf'), inputs.redisConf)
}

/**
 * Builds (or finds in the cache) the guest: Debian's kernel + an initramfs with busybox-static,
 * the virtio-net modules and redis-server. Same inputs → the existing image, no work.
 */
export async function buildGuestImage(options: BuildGuestOptions = {}): Promise<BuildGuestResult> {
  const started = performance.now()
  const log = options.log ?? (() => {})
  const cacheDir = options.cacheDir ?? defaultGuestCacheDir()
  const inputs = await resolveGuestInputs(log)
  const key = guestInputsKey(inputs)
  const finalDir = join(cacheDir, key)
  mkdirSync(cacheDir, { recursive: true })
  const existing = openGuestImage(finalDir)
  if (existing && !options.force) {
    writeLatest(cacheDir, key)
    log(`guest image ${key} is up to date: ${finalDir}`)
    return { image: existing, built: false, durationMs: performance.now() - started }
  }
  log(`building guest image ${key} (kernel ${inputs.kernelPackage} ${inputs.kernelVersion})`)
  const work = mkdtempSync(join(cacheDir, `.build-${key}-`))
  try {
    const outDir = join(work, 'out')
    const staging = join(work, 'root')
    mkdirSync(outDir)
    mkdirSync(staging)
    await extractKernel(inputs, work, staging, outDir)
    await stageUserland(inputs, staging)
    const initrd = join(outDir, 'initramfs.cpio.gz')
    // WHY cpio -R 0:0: files must be root-owned in the guest even if we build as another user.
    await runCommand(
      'sh',
      [
        '-c',
        'cd "$1" && find . -print0 | cpio --null -o -H newc -R 0:0 --quiet | gzip -6 > "$2"',
        'sh',
        staging,
        initrd,
      ],
      { timeoutMs: 300_000 },
    )
    const manifest: GuestManifest = {
      key,
      builderVersion: inputs.builderVersion,
      kernelPackage: inputs.kernelPackage,
      kernelVersion: inputs.kernelVersion,
      busyboxVersion: inputs.busyboxVersion,
      redisVersion: inputs.redisVersion,
      modules: inputs.modules,
      builtAt: new Date().toISOString(),
      initramfsBytes: statSync(initrd).size,
    }
    writeFileSync(join(outDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`)
    if (existsSync(finalDir)) rmSync(finalDir, { recursive: true, force: true })
    // WHY rename: readers never see a half-written image, and concurrent builders don't clash.
    renameSync(outDir, finalDir)
    writeLatest(cacheDir, key)
    const image = openGuestImage(finalDir)
    if (!image) throw new Error(`built image at ${finalDir} is incomplete`)
    log(`built guest image ${key}: ${finalDir}`)
    return { image, built: true, durationMs: performance.now() - started }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

function writeLatest(cacheDir: string, key: string): void {
  const tmp = join(cacheDir, `${LATEST_FILE}.${process.pid}.tmp`)
  writeFileSync(tmp, `${JSON.stringify({ key })}\n`)
  renameSync(tmp, join(cacheDir, LATEST_FILE))
}

/** The image for the current inputs, building it when the cache lacks it. */
export async function ensureGuestImage(options: BuildGuestOptions = {}): Promise<GuestImage> {
  return (await buildGuestImage(options)).image
}
