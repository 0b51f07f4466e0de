import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { defaultGuestCacheDir } from './cache-dir.js'

/** What a built guest image records about itself (manifest.json in its directory). */
export interface GuestManifest {
  readonly key: string
  readonly builderVersion: number
  readonly kernelPackage: string
  readonly kernelVersion: string
  readonly busyboxVersion: string
  readonly redisVersion: string
  readonly modules: readonly string[]
  readonly builtAt: string
  readonly initramfsBytes: number
}

/** A bootable guest: pass `kernel` to `-kernel` and `initrd` to `-initrd`. */
export interface GuestImage {
  readonly dir: string
  readonly kernel: string
  readonly initrd: string
  readonly manifest: GuestManifest
}

/** Name of the pointer file naming the most recently built (or verified) image. */
export const LATEST_FILE = 'latest.json'

/** Opens an image directory, or returns undefined when it is incomplete. */
export function openGuestImage(dir: string): GuestImage | undefined {
  const kernel = join(dir, 'vmlinuz')
  const initrd = join(dir, 'initramfs.cpio.gz')
  const manifestPath = join(dir, 'manifest.json')
  if (!existsSync(kernel) || !existsSync(initrd) || !existsSync(manifestPath)) return undefined
  try {
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as GuestManifest
    return { dir, kernel, initrd, manifest }
  } catch {
    return undefined
  }
}

/**
 * The image the last `build` produced, without resolving package versions (fast; used by tests).
 * Returns undefined when nothing was built yet. Use `ensureGuestImage()` to build when missing.
 */
export function findGuestImage(cacheDir: string = defaultGuestCacheDir()): GuestImage | undefined {
  try {
    const latest = JSON.parse(readFileSync(join(cacheDir, LATEST_FILE), 'utf8')) as { key?: unknown }
    if (typeof latest.key !== 'string') return undefined
    return openGuestImage(join(cacheDir, latest.key))
  } catch {
    return undefined
  }
}
