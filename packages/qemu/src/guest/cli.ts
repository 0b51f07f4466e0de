#!/usr/bin/env node
/**
 * `node dist/guest/cli.js build [--force] [--cache-dir DIR]` — builds the test guest (cached by content).
 * `node dist/guest/cli.js path` — prints the kernel and initrd of the last build (exit 1 if none).
 */
import { buildGuestImage } from './build-guest.js'
import { defaultGuestCacheDir } from './cache-dir.js'
import { findGuestImage } from './guest-image.js'

function flagValue(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}

async function main(argv: readonly string[]): Promise<number> {
  const [command = 'build', ...rest] = argv
  const cacheDir = flagValue(rest, '--cache-dir') ?? defaultGuestCacheDir()
  if (command === 'build') {
    const result = await buildGuestImage({
      cacheDir,
      force: rest.includes('--force'),
      log: (m) => console.error(`guest: ${m}`),
    })
    const { image } = result
    console.log(
      JSON.stringify({
        built: result.built,
        durationMs: Math.round(result.durationMs),
        kernel: image.kernel,
        initrd: image.initrd,
        key: image.manifest.key,
      }),
    )
    return 0
  }
  if (command === 'path') {
    const image = findGuestImage(cacheDir)
    if (!image) {
      console.error(`no guest image under ${cacheDir}: run "build" first`)
      return 1
    }
    console.log(JSON.stringify({ kernel: image.kernel, initrd: image.initrd, key: image.manifest.key }))
    return 0
  }
  console.error('usage: cli.js build [--force] [--cache-dir DIR] | path [--cache-dir DIR]')
  return 2
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err)
    process.exitCode = 1
  },
)
