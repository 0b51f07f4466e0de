import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { StorageError } from '../../src/wal/errors.js'
import { Wal } from '../../src/wal/wal.js'
import { entries } from './helpers.js'

// A real full disk: a 1 MiB tmpfs (needs root; skipped otherwise). Always unmounted in teardown.
const mnt = mkdtempSync(join(tmpdir(), 'plover-enospc-'))
let mounted = false
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt], { stdio: 'ignore' })
  mounted = true
} catch {}
t.teardown(() => {
  if (mounted) execFileSync('umount', [mnt])
  rmdirSync(mnt)
})

for (const io of ['threadpool', 'inline'] as const) {
  t.test(
    `ENOSPC is a StorageError and fails the storage for good (${io} io)`,
    { skip: !mounted && 'cannot mount tmpfs' },
    async (t) => {
      const dir = join(mnt, `wal-${io}`)
      t.teardown(() => rmSync(dir, { recursive: true, force: true }))
      const wal = await Wal.open(dir, { io })
      let acked = 0
      let err: unknown
      for (let i = 1; i <= 1000 && !err; i++) {
        try {
          await wal.save({ entries: entries(i, i, 1, 4096) })
          acked = i
        } catch (e) {
          err = e
        }
      }
      t.ok(err instanceof StorageError, 'write failed with StorageError')
      t.equal((err as StorageError).kind, 'io')
      t.equal((err as StorageError).code, 'ENOSPC')
      t.equal(wal.failure, err)
      // Failed state: nothing further is accepted, even something tiny that would fit.
      await t.rejects(wal.save({ hardState: { term: 1, vote: 0, commit: 0 } }), err as Error)
      await wal.close()
      t.ok(acked > 100, `${acked} entries acknowledged before the disk filled`)
      // Everything acknowledged is recoverable; nothing unacknowledged is claimed.
      const again = await Wal.open(dir)
      t.ok(
        again.recovered.entries.length >= acked,
        `recovered ${again.recovered.entries.length} >= acked ${acked}`,
      )
      await again.close()
    },
  )
}
