import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Env var overriding where guest images are cached. */
export const GUEST_DIR_ENV = 'PLOVER_GUEST_DIR'

/**
 * Walks up from this module to the pnpm workspace root, so every package, test, bench and example
 * shares one cache no matter its cwd. Falls back to the cwd outside a checkout.
 */
export function findRepoRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = resolve(from)
  for (;;) {
    if (existsSync(join(dir, 'pnpm-workspace.yaml'))) return dir
    const parent = dirname(dir)
    if (parent === dir) return process.cwd()
    dir = parent
  }
}

/** `$PLOVER_GUEST_DIR`, else `<repo>/.cache/guest`. */
export function defaultGuestCacheDir(): string {
  const fromEnv = process.env[GUEST_DIR_ENV]
  if (fromEnv) return resolve(fromEnv)
  return join(findRepoRoot(), '.cache', 'guest')
}
