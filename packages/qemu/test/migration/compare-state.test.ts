import { randomBytes } from 'node:crypto'
import t from 'tap'
import { compareDeviceState, ramBlockAddrRanges, sameDeviceState } from '../../src/migration/compare-state.js'

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

/** An x-ignore-shared stream's RAM section header: two blocks, each with its mapping address. */
function ramStream(addrs: [bigint, bigint], sizes: [bigint, bigint] = [0x8000000n, 0x40000n]): Buffer {
  const u64 = (v: bigint) => {
    const b = Buffer.alloc(8)
    b.writeBigUInt64BE(v)
    return b
  }
  const block = (name: string, size: bigint, addr: bigint) =>
    Buffer.concat([Buffer.of(name.length), Buffer.from(name, 'latin1'), u64(size), u64(addr)])
  return Buffer.concat([
    Buffer.from('QEVM\x00\x00\x00\x03 capabilities x-ignore-shared ', 'latin1'),
    Buffer.from('\x01\x00\x00\x00\x02\x03ram', 'latin1'),
    Buffer.of(0, 0, 0, 0, 0, 0, 0, 4), // instance id, version
    u64((sizes[0] + sizes[1]) | 0x4n), // total | RAM_SAVE_FLAG_MEM_SIZE
    block('pc.ram', sizes[0], addrs[0]),
    block('/rom@etc/virtio-net', sizes[1], addrs[1]),
    Buffer.from('\x10 rest of the stream', 'latin1'),
  ])
}

t.test(
  "x-ignore-shared RAM blocks' mapping addresses are ignored, their names and sizes are not",
  async (t) => {
    const primary = ramStream([0n, 0xfeb80000n])
    const standby = ramStream([0n, 0n])
    t.equal(ramBlockAddrRanges(primary).length, 2, 'both blocks found')
    t.ok(sameDeviceState(primary, standby), 'the option ROM mapped on one side only')
    const resized = ramStream([0n, 0n], [0x8000000n, 0x80000n])
    t.notOk(sameDeviceState(primary, resized), 'a different block size counts')
    const tail = Buffer.from(standby)
    tail[tail.length - 1] ^= 1
    t.notOk(sameDeviceState(primary, tail), 'bytes after the header count')
    const plain = Buffer.from(
      primary.toString('latin1').replace('x-ignore-shared', 'x-ignore-xxxxxx'),
      'latin1',
    )
    const plainStandby = Buffer.from(
      standby.toString('latin1').replace('x-ignore-shared', 'x-ignore-xxxxxx'),
      'latin1',
    )
    t.same(ramBlockAddrRanges(plain), [], 'no x-ignore-shared: no address fields')
    t.notOk(sameDeviceState(plain, plainStandby), 'and the addresses are compared like anything else')
    const truncated = primary.subarray(0, primary.indexOf('/rom@'))
    t.same(ramBlockAddrRanges(truncated), [], 'a header that does not parse skips nothing')
  },
)
