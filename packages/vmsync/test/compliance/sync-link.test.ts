// Both SyncLink implementations pass the SyncLink compliance suite: the authenticated,
// encrypted TCP link on real loopback sockets, and the in-memory pair.
import t from 'tap'
import { runSyncLinkCompliance } from '../../src/compliance/index.js'
import { createMemoryLinkPair } from '../../src/link/memory-link.js'
import { tcpPair } from '../protocol/fixtures/harness.js'

t.test('TcpSyncLink', async (t) => {
  await runSyncLinkCompliance(t, async () => {
    const { a, b, close } = await tcpPair()
    return { a, b, cleanup: close }
  })
})

t.test('in-memory link pair', async (t) => {
  await runSyncLinkCompliance(t, async () => {
    const [a, b] = createMemoryLinkPair()
    return { a, b, cleanup: async () => a.close() }
  })
})
