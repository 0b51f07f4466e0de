// SimulatedVmCpuProbe: the VM loop's busy time as a CPU clock starting at 0; 'gone' once the VM
// exited; and it passes @plover/idle-monitor's CpuProbe compliance suite (which also checks that
// it type-checks as a CpuProbe).
import { runCpuProbeCompliance } from '@plover/idle-monitor/compliance'
import t from 'tap'
import { encodeKvRequest, KvOp, SimulatedVm } from '../../src/simulated/index.js'
import { SimulatedVmCpuProbe } from '../../src/simulated/simulated-cpu-probe.js'

t.test('CPU clock grows with the work the VM does; gone after exit', async (t) => {
  const vm = new SimulatedVm({ pageCount: 256, deterministic: true, tickMs: 0 })
  await vm.resume()
  const probe = new SimulatedVmCpuProbe(vm)
  const s0 = probe.sample()
  t.equal(s0.state, 'ok')
  if (s0.state !== 'ok') return
  t.equal(s0.cpuNs, 0, 'starts at 0')
  t.equal(s0.threads, 1)
  for (let i = 0; i < 200; i++) {
    await vm.injectFrame(
      encodeKvRequest({ op: KvOp.Set, clientId: 1, requestId: i, key: `k${i}`, value: 'x'.repeat(500) }),
    )
  }
  await vm.drained()
  const s1 = probe.sample()
  t.ok(
    s1.state === 'ok' && s1.cpuNs > 0,
    `busy time after 200 requests: ${s1.state === 'ok' ? s1.cpuNs : '-'} ns`,
  )
  await vm.close()
  const s2 = probe.sample()
  t.equal(s2.state, 'gone', 'gone once the VM exited')
  if (s2.state === 'gone') t.equal(s2.error.name, 'ProcessGoneError')
  probe.close()
})

t.test('SimulatedVmCpuProbe passes the CpuProbe compliance suite', async (t) => {
  await runCpuProbeCompliance(t, async () => {
    const vm = new SimulatedVm({ pageCount: 256, tickMs: 0 })
    await vm.resume()
    let id = 0
    return {
      probe: new SimulatedVmCpuProbe(vm),
      // Work = requests for the VM's CPU loop, as fast as it takes them.
      busy: async (ms) => {
        const end = Date.now() + ms
        while (Date.now() < end) {
          for (let i = 0; i < 50; i++)
            await vm.injectFrame(
              encodeKvRequest({
                op: KvOp.Set,
                clientId: 2,
                requestId: ++id,
                key: `k${id % 100}`,
                value: 'v'.repeat(800),
              }),
            )
          await vm.drained()
        }
      },
      end: async () => vm.crash('compliance check'),
      cleanup: () => vm.close(),
    }
  })
})
