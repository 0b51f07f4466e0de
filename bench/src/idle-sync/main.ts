// bench idle-sync: syncing on idle (the idle monitor) versus fixed intervals of 25 ms (Remus on
// Xen's default) and 100 ms (Remus on KVM's), on the same closed-loop KV workload, in one run:
// identical-page %, bytes per sync and throughput. Anchor: the same workload unreplicated.
//
//   cd bench && node --import tsx src/idle-sync/main.ts [--seconds 5] [--clients 8] [--pages 16384]
//                                                      [--qemu [--qemu-seconds 30]]
// --qemu adds the QEMU redis rows (qemu-rows.ts; root, ~1 min per row) and writes
// results/idle-sync-qemu.json.
//
// Needs @plover/idle-monitor and @plover/vmsync built (their dist/ is what is imported).
import { writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { type IdleBaseline, IdleMonitor, outputSourceFromGuard } from '@plover/idle-monitor'
import { SimulatedVm } from '@plover/vmsync'
import { bareEndpoint, KvLoad, type LoadOptions, replicaEndpoint } from './kv-load.js'
import { qemuRows } from './qemu-rows.js'
import { SimPair, type SyncResult } from './sim-pair.js'
import { simulatedCpuProbe } from './sim-vm-probes.js'
import { printTable, type Row, summarize } from './summarize.js'
import { fixedInterval, idleDriven, type SyncDriver } from './sync-drivers.js'

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    clients: { type: 'string', default: '8' },
    pages: { type: 'string', default: '16384' },
    'calibrate-ms': { type: 'string', default: '1000' },
    'hasher-threads': { type: 'string', default: '2' },
    seed: { type: 'string', default: '7' },
    qemu: { type: 'boolean', default: false },
    'qemu-seconds': { type: 'string', default: '30' },
  },
})
const SECONDS = Number(values.seconds)
const PAGES = Number(values.pages)
const SEED = Number(values.seed)
const load: LoadOptions = {
  clients: Number(values.clients),
  keys: 2000,
  setRatio: 0.5,
  maxValueBytes: 512,
  seed: SEED,
}

const rows: Row[] = []

// Anchor: the same workload on one VM, no replication.
{
  const vm = new SimulatedVm({ pageCount: PAGES, seed: SEED })
  await vm.resume()
  const kv = new KvLoad(bareEndpoint(vm), load)
  const r = await kv.run(SECONDS)
  kv.close()
  await vm.close()
  rows.push(summarize('SimulatedVm', 'unreplicated', [], r, {}, 0))
}

// 'idle' uses the policy defaults; 'idle-min25' lowers the minimum interval to Remus-Xen's 25 ms,
// so that it differs from fixed-25ms only in *when* it syncs, not in how often it may.
for (const policy of ['idle', 'idle-min25', 'fixed-25ms', 'fixed-100ms'] as const) {
  const pair = new SimPair({ pageCount: PAGES, seed: SEED, hasherThreads: Number(values['hasher-threads']) })
  await pair.start()
  const syncs: SyncResult[] = []
  let measuring = false
  const collect = (r: SyncResult) => {
    if (measuring) syncs.push(r)
  }
  let driver: SyncDriver
  if (policy === 'idle' || policy === 'idle-min25') {
    const monitor = new IdleMonitor({
      cpu: simulatedCpuProbe(pair.pvm),
      output: outputSourceFromGuard(pair.primary.guard),
      calibration: { windowMs: Number(values['calibrate-ms']) },
      policy: policy === 'idle-min25' ? { minIntervalMs: 25 } : {},
    })
    const calibrated = new Promise<IdleBaseline>((r) => monitor.once('calibrated', r))
    driver = idleDriven(pair, monitor, collect)
    driver.start() // calibrates first: the VM is at rest (no clients yet)
    await calibrated
  } else {
    driver = fixedInterval(pair, policy === 'fixed-25ms' ? 25 : 100, collect)
    driver.start()
  }
  for (const k of Object.keys(driver.reasons)) delete driver.reasons[k as keyof SyncDriver['reasons']]
  measuring = true
  const kv = new KvLoad(replicaEndpoint(pair.primary), load)
  const r = await kv.run(SECONDS)
  measuring = false
  await driver.stop()
  kv.close()
  await pair.close()
  rows.push(summarize('SimulatedVm', policy, syncs, r, { ...driver.reasons }, driver.failures.length))
}

const qemu = await qemuRows({ run: values.qemu, seconds: Number(values['qemu-seconds']) })
rows.push(...qemu.rows)
if (values.qemu) {
  const file = fileURLToPath(new URL('../../results/idle-sync-qemu.json', import.meta.url))
  writeFileSync(
    file,
    `${JSON.stringify({ bench: 'idle-sync-qemu', date: new Date().toISOString(), loadavg: loadavg(), rows: qemu.rows, outcomes: qemu.outcomes }, null, 2)}\n`,
  )
  console.log(`wrote ${file}`)
}

console.log(`idle-sync: ${SECONDS} s per row, ${load.clients} closed-loop clients, ${PAGES} pages of 4 KiB`)
printTable(rows)
console.log(JSON.stringify({ bench: 'idle-sync', seconds: SECONDS, load, pages: PAGES, rows }))
