// ProcessCpuProbe, with each of its /proc sources, passes the CpuProbe compliance suite on a real
// child process that works on request and is SIGKILLed to end it.
import t from 'tap'
import { runCpuProbeCompliance } from '../src/compliance/index.js'
import { ProcessCpuProbe } from '../src/probes/process-cpu-probe.js'
import { schedstatAvailable } from '../src/probes/schedstat-available.js'
import { killAndReap, ON_REQUEST, spawnNodeWithInput, waitForLine } from './fixtures/children.js'

const SOURCES = schedstatAvailable() ? (['stat', 'schedstat'] as const) : (['stat'] as const)

for (const source of SOURCES) {
  t.test(`ProcessCpuProbe (${source})`, async (t) => {
    await runCpuProbeCompliance(t, async () => {
      const child = spawnNodeWithInput(ON_REQUEST)
      await waitForLine(child, /^ready$/)
      return {
        probe: new ProcessCpuProbe(child.pid!, { source }),
        busy: async (ms) => {
          const done = waitForLine(child, new RegExp(`^done ${ms}$`))
          child.stdin!.write(`busy ${ms}\n`)
          await done
        },
        end: () => killAndReap(child),
        cleanup: () => killAndReap(child),
      }
    })
  })
}
