// SyncScheduler between a trigger and a real primary/backup VmReplica pair (SimulatedVm, TCP
// sync link, in-memory ordered log): one sync at a time, every due sync either started or
// reported back to the trigger as over, and a role change ends a pending request. Then a real
// IdleMonitor drives it under a KV workload.
import { IdleMonitor } from '@plover/idle-monitor'
import { EventEmitter } from 'eventemitter3'
import t from 'tap'
import type { SyncReport } from '../../src/metrics/sync-report.js'
import { SyncScheduler, type SyncTrigger } from '../../src/runtime/sync-scheduler.js'
import { encodeKvRequest, KvOp } from '../../src/simulated/index.js'
import { SimulatedVmCpuProbe } from '../../src/simulated/simulated-cpu-probe.js'
import { waitEvent } from '../protocol/fixtures/harness.js'
import { simulatedReplicaPair } from '../protocol/fixtures/replica-pair.js'

/** A trigger the test fires by hand; it counts what the scheduler tells it. */
class ScriptedTrigger
  extends EventEmitter<{ 'sync-due': (due: { reason: string }) => void }>
  implements SyncTrigger
{
  started = 0
  completed = 0
  due(reason = 'idle'): void {
    this.emit('sync-due', { reason })
  }
  syncStarted(): void {
    this.started++
  }
  syncCompleted(): void {
    this.completed++
  }
}

t.test('due syncs start only on a primary with a ready backup, one at a time', async (t) => {
  const { primary, backup, attach } = await simulatedReplicaPair(t, { link: false, followLeadership: false })
  const trigger = new ScriptedTrigger()
  let ready = false
  const sched = new SyncScheduler({ replica: primary, trigger, ready: () => ready })
  t.teardown(() => sched.close())
  const skipped: string[] = []
  sched.on('skipped', (_r, why) => skipped.push(why))

  trigger.due()
  t.same(skipped, ['no backup attached'])
  t.equal(trigger.completed, 1, 'a skipped sync restarts the trigger clock')
  attach()
  trigger.due()
  t.same(skipped.at(-1), 'backup not ready')
  t.equal(trigger.started, 0, 'nothing started')

  ready = true
  const done = waitEvent<[SyncReport]>(primary, 'sync-completed')
  trigger.due('max-interval')
  t.ok(sched.inProgress)
  t.equal(trigger.started, 1)
  trigger.due()
  t.equal(skipped.at(-1), 'a sync is in progress')
  t.equal(trigger.completed, 2, 'a due sync during one in progress does not end it early')
  const [report] = await done
  t.equal(report.side, 'primary')
  t.notOk(sched.inProgress, 'over once the primary reports')
  t.equal(trigger.completed, 3, 'the trigger hears that it is over, once')
  t.equal(trigger.started, 1)

  // The backup's own scheduler never starts one.
  const other = new ScriptedTrigger()
  const onBackup = new SyncScheduler({ replica: backup, trigger: other })
  t.teardown(() => onBackup.close())
  const why: string[] = []
  onBackup.on('skipped', (_r, w) => why.push(w))
  other.due()
  t.same(why, ['not primary'])
  t.equal(other.started, 0)
})

t.test('a role change ends a pending request', async (t) => {
  const { primary } = await simulatedReplicaPair(t, { followLeadership: false })
  const trigger = new ScriptedTrigger()
  const sched = new SyncScheduler({ replica: primary, trigger })
  t.teardown(() => sched.close())
  trigger.due()
  t.ok(sched.inProgress)
  // Demoted before the marker's sync reports: it never will, to this role.
  primary.demote()
  t.notOk(sched.inProgress)
  t.equal(trigger.completed, 1)
  await new Promise((r) => setTimeout(r, 50))
  t.equal(trigger.completed, 1, 'reported over exactly once (a later rejection does not count twice)')
  trigger.due()
  t.equal(trigger.started, 1, 'a backup does not start syncs')
})

t.test('a real IdleMonitor drives syncs under a KV workload', async (t) => {
  const { primary, pvm } = await simulatedReplicaPair(t, { followLeadership: false })
  const guard = primary.guard
  const monitor = new IdleMonitor({
    cpu: new SimulatedVmCpuProbe(pvm),
    output: {
      heldBytes: () => guard.stats().heldBytes,
      oldestHeldAgeMs: () => guard.stats().oldestHeldAgeMs,
      framesOut: () => guard.stats().emittedFrames,
    },
    periodMs: 10,
    policy: { maxIntervalMs: 200, minIntervalMs: 20, maxHeldAgeMs: 30 },
    calibration: { windowMs: 100, minIntervals: 5 },
  })
  const sched = new SyncScheduler({ replica: primary, trigger: monitor })
  t.teardown(() => {
    sched.close()
    monitor.close()
  })
  let requested = 0
  let reported = 0
  let overlap = false
  sched.on('requested', () => {
    if (requested > reported) overlap = true
    requested++
  })
  primary.on('sync-completed', (r) => r.side === 'primary' && reported++)
  primary.on('sync-failed', (f) => f.side === 'primary' && reported++)
  monitor.start()
  let id = 1
  const load = setInterval(() => {
    for (let i = 0; i < 5; i++)
      primary.pushInput(
        encodeKvRequest({ op: KvOp.Set, clientId: 1, requestId: id++, key: `k${id % 64}`, value: `v${id}` }),
      )
  }, 5)
  t.teardown(() => clearInterval(load))
  const start = Date.now()
  while (reported < 4 && Date.now() - start < 20_000) await new Promise((r) => setTimeout(r, 20))
  clearInterval(load)
  t.ok(reported >= 4, `the monitor's verdicts became syncs (${reported} reported)`)
  t.notOk(overlap, 'never a second request before the first reported')
  t.ok(requested - reported <= 1, 'at most one in flight')
  t.ok(guard.stats().releasedFrames > 0, 'held outputs were released by the syncs')
})
