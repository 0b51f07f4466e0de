// The QEMU replica's CPU probe follows the current QEMU pid (a backup may swap in a standby
// QEMU). On real child processes: it passes @plover/idle-monitor's CpuProbe compliance suite,
// and a pid change gives exactly one 'error' sample, then readings of the new process.
import { type ChildProcess, spawn } from 'node:child_process'
import { runCpuProbeCompliance } from '@plover/idle-monitor/compliance'
import t from 'tap'
import { FollowingCpuProbe } from '../src/replica/following-cpu-probe.js'

/** A node child that spins for N ms per stdin line "N" and answers "done"; idle otherwise. */
async function worker(): Promise<{
  child: ChildProcess
  busy(ms: number): Promise<void>
  kill(): Promise<void>
}> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `process.stdin.on('data', (d) => { for (const l of String(d).trim().split('\\n')) { const end = Date.now() + Number(l); while (Date.now() < end) {} console.log('done') } }); console.log('ready')`,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  )
  const lines: string[] = []
  let wake: (() => void) | undefined
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    lines.push(...d.trim().split('\n'))
    wake?.()
  })
  const next = async (what: string) => {
    while (!lines.includes(what)) await new Promise<void>((r) => (wake = r))
    lines.splice(lines.indexOf(what), 1)
  }
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  await next('ready')
  return {
    child,
    busy: async (ms) => {
      child.stdin!.write(`${ms}\n`)
      await next('done')
    },
    kill: async () => {
      child.kill('SIGKILL')
      await exited
    },
  }
}

t.test('passes the CpuProbe compliance suite', async (t) => {
  await runCpuProbeCompliance(t, async () => {
    const w = await worker()
    return {
      probe: new FollowingCpuProbe(() => w.child.pid!),
      busy: w.busy,
      end: w.kill,
      cleanup: w.kill,
    }
  })
})

t.test('a pid change: one error sample, then the new process from zero', async (t) => {
  const first = await worker()
  const second = await worker()
  t.teardown(async () => {
    await first.kill()
    await second.kill()
  })
  let pid = first.child.pid!
  const probe = new FollowingCpuProbe(() => pid)
  t.teardown(() => probe.close())
  await first.busy(100)
  const before = probe.sample()
  t.equal(before.state, 'ok')
  pid = second.child.pid!
  const switched = probe.sample()
  t.equal(switched.state, 'error', 'the sample across two processes is an error, not an interval')
  if (switched.state === 'error') t.match(switched.error.message, /QEMU process changed/)
  const a = probe.sample()
  await second.busy(200)
  const b = probe.sample()
  t.ok(a.state === 'ok' && b.state === 'ok', 'then ok samples')
  if (a.state === 'ok' && b.state === 'ok') {
    t.ok(a.cpuNs < 50e6, `the new process's clock starts near zero (${a.cpuNs / 1e6} ms)`)
    t.ok(b.cpuNs - a.cpuNs >= 50e6, `and follows its work (${(b.cpuNs - a.cpuNs) / 1e6} ms)`)
  }
})
