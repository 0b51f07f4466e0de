import { randomBytes } from 'node:crypto'
import t from 'tap'
import { compareDeviceState, sameDeviceState } from '../../src/migration/compare-state.js'

function stream(): Buffer {
  return Buffer.concat([randomBytes(1000), Buffer.from('\x0bmc146818rtc', 'latin1'), randomBytes(1000)])
}

t.test('differences in the RTC clock registers are ignored, all others count', async (t) => {
  const a = stream()
  const rtc = a.indexOf('mc146818rtc') - 1
  const clock = Buffer.from(a)
  clock[rtc + 12 + 8] ^= 1 // cmos seconds register
  t.ok(sameDeviceState(a, clock))
  const other = Buffer.from(a)
  other[10] ^= 1
  t.same(compareDeviceState(a, other).offsets, [10])
  t.notOk(sameDeviceState(a, Buffer.concat([a, Buffer.of(0)])), 'different lengths differ')
  const afterRtc = Buffer.from(a)
  afterRtc[rtc + 12 + 8 + 128 + 64] ^= 1
  t.notOk(sameDeviceState(a, afterRtc), 'only the RTC window is tolerated')
})
