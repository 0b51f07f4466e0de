import { spawn } from 'node:child_process'
import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { requireQemu } from '../../src/testing/require-qemu.js'
import { uniqueVmName } from '../../src/testing/unique-name.js'

const launchModule = fileURLToPath(new URL('../../src/launch/qemu-process.ts', import.meta.url))
const bootModule = fileURLToPath(new URL('../../src/launch/guest-boot.ts', import.meta.url))
// WHY reuse tap's TypeScript loader: the child imports the same .ts sources as this test.
const tsLoader = process.execArgv.filter((a) => a.includes('@tapjs/typescript'))

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (!alive(pid)) return true
    await sleep(50)
  }
  return !alive(pid)
}

/**
 * Starts a Node process that launches QEMU and reports its pid; `then` decides how it ends.
 * WHY a standby (-incoming defer): it never runs the guest, so only its parent's death can end it.
 */
function childLaunching(kernel: string, initrd: string, name: string, then: 'hang' | 'exit') {
  const code = `
    const { launch } = await import(${JSON.stringify(launchModule)})
    const { guestBoot } = await import(${JSON.stringify(bootModule)})
    const vm = await launch({ name: ${JSON.stringify(name)}, memoryMiB: 128, incoming: 'defer',
      boot: guestBoot({ kernel: ${JSON.stringify(kernel)}, initrd: ${JSON.stringify(initrd)}, manifest: {}, dir: '' }) })
    console.log(JSON.stringify({ pid: vm.pid }))
    ${then === 'exit' ? 'process.exit(0)' : 'setInterval(() => {}, 1000)'}
  `
  const child = spawn(process.execPath, [...tsLoader, '--input-type=module', '-e', code], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const pid = new Promise<number>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString()
      const m = /\{"pid":(\d+)\}/.exec(out)
      if (m) resolve(Number(m[1]))
    })
    child.once('exit', (c) =>
      setTimeout(() => reject(new Error(`child exited (${c}) before reporting: ${out}`)), 100),
    )
  })
  return { child, pid }
}

for (const how of ['hang', 'exit'] as const) {
  t.test(
    `QEMU dies with its Node parent (${how === 'hang' ? 'parent SIGKILLed' : 'parent calls process.exit'})`,
    async (t) => {
      const env = requireQemu(t)
      if (!env) return
      const name = uniqueVmName('orphan')
      const { child, pid } = childLaunching(env.image.kernel, env.image.initrd, name, how)
      let qemuPid = 0
      t.teardown(() => {
        child.kill('SIGKILL')
        if (qemuPid && alive(qemuPid)) process.kill(qemuPid, 'SIGKILL') // never leak one on failure
        rmSync(`/dev/shm/plover-${name}.ram`, { force: true })
        // The run dir (sockets, serial log) is the dead parent's to remove: nobody else will.
        rmSync(join(tmpdir(), 'plover-qemu', name), { recursive: true, force: true })
      })
      qemuPid = await pid
      t.ok(alive(qemuPid), 'QEMU runs')
      if (how === 'hang') child.kill('SIGKILL')
      t.ok(await waitGone(qemuPid, 10_000), 'QEMU is gone after its parent died')
    },
  )
}
