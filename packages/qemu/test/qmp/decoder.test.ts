import t from 'tap'
import { QmpDecoder } from '../../src/qmp/decoder.js'
import { QmpProtocolError } from '../../src/qmp/errors.js'

t.test('reassembles messages split across chunks, including inside a UTF-8 sequence', async (t) => {
  const d = new QmpDecoder()
  const bytes = Buffer.from(
    '{"return": {"name": "vé"}, "id": "a"}\r\n{"event": "STOP", "data": {}, "timestamp": {"seconds": 1, "microseconds": 2}}\n',
  )
  const out = []
  for (let i = 0; i < bytes.length; i += 3) out.push(...d.push(bytes.subarray(i, i + 3)))
  t.same(out, [
    { kind: 'return', return: { name: 'vé' }, id: 'a' },
    { kind: 'event', event: 'STOP', data: {}, timestamp: { seconds: 1, microseconds: 2 } },
  ])
  t.equal(d.end(), undefined)
})

t.test('garbage and wrong shapes are per-line protocol errors; later lines still decode', async (t) => {
  const d = new QmpDecoder()
  const out = d.push(
    'hello garbage\n{"return": {\n42\nnull\n[1]\n{"foo": 1}\n{"error": {"class": 1}}\n{"return": {}, "id": {"x": 1}}\n\n{"return": {}}\n',
  )
  t.equal(out.length, 9)
  for (const r of out.slice(0, 8)) t.type(r, QmpProtocolError)
  t.match((out[0] as QmpProtocolError).message, /invalid JSON/)
  t.match((out[1] as QmpProtocolError).excerpt, '{"return": {')
  t.same(out[8], { kind: 'return', return: {}, id: undefined })
})

t.test('stream ending inside a message reports truncation', async (t) => {
  const d = new QmpDecoder()
  t.same(d.push('{"return": {}}\n{"return": {"sta'), [{ kind: 'return', return: {}, id: undefined }])
  const err = d.end()
  t.type(err, QmpProtocolError)
  t.match(err!.message, /truncated/)
})

t.test('an over-long line is rejected and skipped without buffering it all', async (t) => {
  const d = new QmpDecoder(64)
  const out = d.push(`{"return": "${'x'.repeat(100)}`)
  t.equal(out.length, 1)
  t.match((out[0] as QmpProtocolError).message, /longer than 64/)
  t.same(d.push(`${'y'.repeat(500)}"}\n{"return": 1}\n`), [{ kind: 'return', return: 1, id: undefined }])
})

t.test('error replies and the greeting decode to typed messages', async (t) => {
  const d = new QmpDecoder()
  t.same(
    d.push(
      '{"QMP": {"version": {}, "capabilities": ["oob"]}}\n{"error": {"class": "GenericError", "desc": "no"}, "id": 7}\n',
    ),
    [
      { kind: 'greeting', QMP: { version: {}, capabilities: ['oob'] } },
      { kind: 'error', error: { class: 'GenericError', desc: 'no' }, id: 7 },
    ],
  )
})
