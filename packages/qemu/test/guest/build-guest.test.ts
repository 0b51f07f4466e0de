import { execFileSync } from 'node:child_process'
import t from 'tap'
import { buildGuestImage } from '../../src/guest/build-guest.js'
import { findGuestImage } from '../../src/guest/guest-image.js'
import { GUEST_MODULES } from '../../src/guest/init-script.js'
import { requireQemu } from '../../src/testing/require-qemu.js'

t.test('rebuilding with the same inputs is a no-op returning the cached image', async (t) => {
  const env = requireQemu(t)
  if (!env) return
  const result = await buildGuestImage()
  t.equal(result.built, false, 'nothing rebuilt')
  t.equal(result.image.dir, env.image.dir, 'same content key → same directory')
  t.same(findGuestImage()?.manifest.key, result.image.manifest.key, 'latest.json names it')
  t.match(
    result.image.manifest.kernelPackage,
    /^linux-image-\d/,
    'a versioned kernel package, not the metapackage',
  )
})

t.test(
  'the initramfs holds init, busybox, redis with its libraries, and the virtio-net modules',
  async (t) => {
    const env = requireQemu(t)
    if (!env) return
    const listing = execFileSync('sh', ['-c', 'gzip -dc "$1" | cpio -t --quiet', 'sh', env.image.initrd], {
      encoding: 'utf8',
      maxBuffer: 16 * 1024 * 1024,
    })
      .split('\n')
      .map((l) => l.replace(/^\.\//, ''))
    for (const f of [
      'init',
      'bin/busybox',
      'usr/bin/redis-server',
      'etc/redis.conf',
      'lib64/ld-linux-x86-64.so.2',
    ]) {
      t.ok(listing.includes(f), f)
    }
    for (const m of GUEST_MODULES) t.ok(listing.includes(`lib/modules/plover/${m}.ko`), `${m}.ko`)
    const lddLibs = execFileSync('ldd', ['/usr/bin/redis-server'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => /=>\s*\/(\S+)/.exec(l)?.[1])
      .filter((l): l is string => Boolean(l))
    t.ok(lddLibs.length > 3)
    for (const lib of lddLibs) t.ok(listing.includes(lib), lib)
  },
)
