import t from 'tap'
import {
  GUEST_BUILDER_VERSION,
  type GuestInputs,
  guestInputsKey,
  parseLdd,
} from '../../src/guest/guest-inputs.js'
import {
  GUEST_MODULES,
  GUEST_READY_MARKER,
  GUEST_REDIS_CONF,
  guestInitScript,
} from '../../src/guest/init-script.js'

t.test('parseLdd keeps resolved libraries and the loader, skips the vdso', async (t) => {
  const out = `\tlinux-vdso.so.1 (0x00007ffd)
\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f01)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f02)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f03)
`
  t.same(parseLdd(out), [
    '/lib/x86_64-linux-gnu/libm.so.6',
    '/lib/x86_64-linux-gnu/libc.so.6',
    '/lib64/ld-linux-x86-64.so.2',
  ])
})

t.test('the cache key changes with every input and only with inputs', async (t) => {
  const base: GuestInputs = {
    builderVersion: 1,
    kernelPackage: 'linux-image-6.1.0-56-amd64',
    kernelVersion: '6.1.192-2',
    busyboxVersion: '1:1.35.0-4',
    redisVersion: '5:7.0.15-1',
    modules: [...GUEST_MODULES],
    initScript: guestInitScript(),
    redisConf: 'bind 0.0.0.0\n',
    files: [{ dest: '/bin/busybox', source: '/bin/busybox', sha256: 'aa' }],
  }
  const key = guestInputsKey(base)
  t.equal(guestInputsKey({ ...base }), key, 'deterministic')
  t.equal(
    guestInputsKey({ ...base, files: [{ ...base.files[0], source: '/elsewhere/busybox' }] }),
    key,
    'where a file was read from does not matter, its content does',
  )
  const variants: Partial<GuestInputs>[] = [
    { builderVersion: 2 },
    { kernelVersion: '6.1.193-1' },
    { busyboxVersion: 'x' },
    { redisVersion: 'y' },
    { modules: GUEST_MODULES.slice(1) },
    { initScript: `${base.initScript}\n# changed` },
    { redisConf: 'bind 127.0.0.1\n' },
    { files: [{ ...base.files[0], sha256: 'bb' }] },
  ]
  const keys = new Set(variants.map((v) => guestInputsKey({ ...base, ...v })))
  t.equal(keys.size, variants.length, 'each input change gives a distinct key')
  t.notOk(keys.has(key))
})

t.test('the init script loads modules in dependency order and announces readiness', async (t) => {
  const script = guestInitScript()
  t.match(script, `for m in ${GUEST_MODULES.join(' ')}; do`)
  t.ok(GUEST_MODULES.indexOf('virtio_ring') < GUEST_MODULES.indexOf('virtio_net'))
  t.match(script, GUEST_READY_MARKER)
  t.match(script, 'plover.ip=*')
})

t.test('the guest redis allows DEBUG (DEBUG DIGEST compares primary and backup)', async (t) => {
  t.match(GUEST_REDIS_CONF, /^enable-debug-command yes$/m, 'redis 7 refuses DEBUG without it')
  t.ok(GUEST_BUILDER_VERSION >= 2, 'builder version bumped so cached images without it are rebuilt')
})
