// The guest's redis answers DEBUG DIGEST (enable-debug-command), and the digest helper fails loudly
// when it does not: redis 7's refusal is the same error text on both sides, so comparing replies
// without checking them would call any two datasets identical.
import t from 'tap'
import { requireQemu } from '../../src/testing/require-qemu.js'
import {
  bootRedisGuest,
  parseDebugDigest,
  RedisDigestError,
  redis,
  redisDigest,
} from '../fixtures/redis-guest.js'

t.test('parseDebugDigest rejects redis error replies', async (t) => {
  const refusal =
    'ERR DEBUG command not allowed. If the enable-debug-command option is set to "no", you can\'t run it.'
  t.throws(() => parseDebugDigest(refusal), RedisDigestError)
  t.throws(() => parseDebugDigest(''), RedisDigestError)
  const digest = 'a'.repeat(40)
  t.equal(parseDebugDigest(digest), digest)
})

t.test('the guest redis returns a DEBUG DIGEST that tracks the dataset', async (t) => {
  const env = requireQemu(t)
  if (!env) return
  const { port } = await bootRedisGuest(t, env, { memoryMiB: 128 })
  const empty = await redisDigest(port)
  t.match(empty, /^debug:[0-9a-f]{40} sha256:/, 'DEBUG DIGEST is allowed')
  await redis(port, 'SET', 'k', 'v1')
  const one = await redisDigest(port)
  t.not(one, empty, 'a SET changes the digest')
  t.not(one.split(' ')[0], empty.split(' ')[0], 'DEBUG DIGEST itself changes')
  await redis(port, 'SET', 'k', 'v1')
  t.equal(await redisDigest(port), one, 'same dataset, same digest')
})
