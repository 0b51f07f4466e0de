import t from 'tap'
import { isDeadState, parseProcIo, parseProcStat, parseSchedstat } from '../src/probes/proc-parse.js'

// A real /proc/PID/stat line with a hostile comm containing ') ' and spaces.
const STAT =
  '4242 (evil) (name x) R 1 4242 4242 0 -1 4194304 2805 0 0 0 35 7 0 0 20 0 7 0 94250 881504256 11603 ' +
  '18446744073709551615 1 1 0 0 0 0 0 16781312 17922 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n'

t.test('stat: fields after the LAST parenthesis, comm kept whole', async (t) => {
  const s = parseProcStat(STAT)
  t.equal(s.comm, 'evil) (name x')
  t.equal(s.state, 'R')
  t.equal(s.utimeTicks, 35)
  t.equal(s.stimeTicks, 7)
  t.equal(s.numThreads, 7)
  t.equal(s.startTimeTicks, 94250)
})

t.test('stat: garbage is an error, not NaN', async (t) => {
  t.throws(() => parseProcStat('no parens here'), /malformed/)
  t.throws(() => parseProcStat('1 (x) R 1 2'), /malformed/)
})

t.test('schedstat: run and runqueue-wait times in ns', async (t) => {
  t.same(parseSchedstat('346243728 5678525 36\n'), { runNs: 346243728, waitNs: 5678525 })
  t.throws(() => parseSchedstat('x y z'), /malformed/)
})

t.test('io: storage bytes and syscall counts', async (t) => {
  const io = parseProcIo(
    'rchar: 6976\nwchar: 5\nsyscr: 10\nsyscw: 3\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n',
  )
  t.same(io, { readBytes: 4096, writeBytes: 8192, syscr: 10, syscw: 3 })
  t.throws(() => parseProcIo('rchar: 1\n'), /read_bytes/)
})

t.test('zombie and dead states count as exited', async (t) => {
  t.ok(isDeadState('Z'))
  t.ok(isDeadState('X'))
  t.notOk(isDeadState('S'))
  t.notOk(isDeadState('R'))
})
