import { readFileSync } from 'node:fs'
import { gunzipSync } from 'node:zlib'
import t from 'tap'
import { probeSoftDirty } from '../../src/dirty/soft-dirty-probe.js'

function kernelHasSoftDirty(): boolean | undefined {
  try {
    return /^CONFIG_MEM_SOFT_DIRTY=y$/m.test(gunzipSync(readFileSync('/proc/config.gz')).toString('utf8'))
  } catch {
    return undefined // no /proc/config.gz: the probe is the only judge
  }
}

t.test('the probe looks at the memory it wrote and agrees with the kernel config', async (t) => {
  const report = await probeSoftDirty()
  t.comment(JSON.stringify(report))
  t.equal(report.presentAfterWrite >= report.probePages, true, 'the probe buffer was found resident')
  t.equal(
    report.supported,
    report.dirtyAfterWrite >= report.probePages * 0.9 && report.dirtyAfterClear <= report.probePages * 0.1,
  )
  t.ok(report.reason.length > 0)
  const config = kernelHasSoftDirty()
  if (config !== undefined) t.equal(report.supported, config, 'probe matches CONFIG_MEM_SOFT_DIRTY')
})
