// Prometheus exposition on an own registry: per-sync observations and output-guard gauges.

import { register as globalRegistry } from 'prom-client'
import t from 'tap'
import { VmsyncMetrics } from '../../src/metrics/vmsync-metrics.js'
import { OutputGuard } from '../../src/output/output-guard.js'
import { SyncMode } from '../../src/protocol/messages.js'

t.test('sync reports and guard stats are exposed', async (t) => {
  const m = new VmsyncMetrics({ labels: { replica: 'r1' } })
  m.observeSync({
    side: 'primary',
    epoch: 3,
    mode: SyncMode.Vsmr,
    dirtyPages: 120,
    peerDirtyPages: 110,
    unionPages: 130,
    identicalPages: 117,
    identicalPct: 90,
    divergentPages: 13,
    bytesSent: 60_000,
    bytesReceived: 2_100,
    deviceStateBytes: 300,
    deviceStateSentBytes: 40,
    pauseMs: 4.5,
    totalMs: 9,
    hashMs: 2,
    hashedBytes: 130 * 4096,
    hashMBps: 266.24,
    stepsMs: { collect: 3, waitAck: 1.5 },
  })
  m.observeSync({
    side: 'primary',
    epoch: 1,
    mode: SyncMode.FullCompared,
    dirtyPages: 0,
    peerDirtyPages: 0,
    unionPages: 1024,
    identicalPages: 1000,
    identicalPct: 97.65625,
    divergentPages: 24,
    bytesSent: 100_000,
    bytesReceived: 16_400,
    deviceStateBytes: 300,
    deviceStateSentBytes: 300,
    pauseMs: 12,
    totalMs: 20,
    hashMs: 5,
    hashedBytes: 1024 * 4096,
    hashMBps: 838.86,
    stepsMs: {},
    precopiedPages: 700,
  })
  m.observeFailure({ side: 'backup', epoch: 4, reason: 'x', error: new Error('x') })
  const g = new OutputGuard({ role: 'primary', protected: true, maxHeldBytes: 150 })
  g.push(Buffer.alloc(100))
  g.push(Buffer.alloc(100)) // over the bound: dropped
  m.trackOutputGuard(g)
  const text = await m.metrics()
  t.match(text, /plover_vmsync_syncs_total\{side="primary",mode="Vsmr",replica="r1"\} 1/)
  t.match(text, /plover_vmsync_sync_failures_total\{side="backup",replica="r1"\} 1/)
  t.match(text, /plover_vmsync_divergent_pages_sum\{replica="r1",side="primary"\} 37/)
  t.match(text, /plover_vmsync_bytes_sent_total\{side="primary",replica="r1"\} 160000/)
  t.match(text, /plover_vmsync_precopied_pages_total\{side="primary",replica="r1"\} 700/)
  t.match(text, /plover_vmsync_syncs_total\{side="primary",mode="FullCompared",replica="r1"\} 1/)
  t.match(text, /plover_vmsync_hash_throughput_mbps\{side="primary",replica="r1"\} 838.86/)
  t.match(text, /plover_vmsync_sync_step_ms_sum\{replica="r1",side="primary",step="collect"\} 3\n/)
  t.match(text, /plover_vmsync_output_held_bytes\{replica="r1"\} 100/)
  t.match(text, /plover_vmsync_output_unprotected\{replica="r1"\} 0/)
  t.match(text, /plover_vmsync_output_dropped_frames_total\{replica="r1"\} 1\n/)
  g.push(Buffer.alloc(100))
  t.match(
    await m.metrics(),
    /plover_vmsync_output_dropped_frames_total\{replica="r1"\} 2\n/,
    'the counter follows',
  )
  t.notMatch(await globalRegistry.metrics(), /plover_vmsync/, 'global registry untouched')
  // Two instances in one process do not collide.
  t.doesNotThrow(() => new VmsyncMetrics())
})

t.test('watch() wires a replica-like emitter', async (t) => {
  const { EventEmitter } = await import('eventemitter3')
  const em = new EventEmitter()
  const m = new VmsyncMetrics()
  m.watch(em as never)
  em.emit('sync-failed', { side: 'primary', epoch: 1, reason: 'x', error: new Error('x') })
  t.match(await m.metrics(), /plover_vmsync_sync_failures_total\{side="primary"\} 1/)
})
