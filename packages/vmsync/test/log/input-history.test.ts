// Whether the log carried an input: an applied Input record or a gap says yes; markers, SyncDones
// and an empty log say no.
import t from 'tap'
import { InputHistory } from '../../src/log/input-history.js'
import { MemoryLogCluster } from '../../src/log/memory-log.js'
import { LogRecordKind } from '../../src/log/ordered-log.js'
import { encodeSyncDone, encodeSyncMarker } from '../../src/protocol/marker.js'

t.test('markers and SyncDones are not inputs; an Input record is', async (t) => {
  const cluster = new MemoryLogCluster()
  const log = cluster.join()
  cluster.setLeader(log)
  const history = new InputHistory(log)
  t.teardown(() => history.detach())
  await log.propose(LogRecordKind.SyncMarker, encodeSyncMarker({ epoch: 1, outputCount: 0 }))
  await log.propose(LogRecordKind.SyncDone, encodeSyncDone({ epoch: 1 }))
  t.equal(history.carriedInput, false, 'a log of syncs only carried no input')
  await log.propose(LogRecordKind.Input, Uint8Array.of(1))
  t.equal(history.carriedInput, true)
})

t.test('a gap counts as inputs carried', async (t) => {
  const cluster = new MemoryLogCluster()
  const log = cluster.join()
  const history = new InputHistory(log)
  log.emit('gap', 500)
  t.equal(history.carriedInput, true, 'what a compaction hid cannot be checked')
  history.detach()
  const other = new InputHistory(log)
  history.detach()
  t.equal(other.carriedInput, false, 'a fresh history of the same log starts empty')
})
