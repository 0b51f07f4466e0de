import type { Test } from 'tap'
import { DecodeError } from '../../src/codec/errors.js'
import { int, mutate, prng, randomBytes } from './prng.js'

/**
 * Feed `cases` random inputs and `cases` mutations of valid encodings to `decode`. Anything it
 * throws other than DecodeError (RangeError, TypeError, OOM from a bogus length) fails the test
 * with the seed and the offending input in hex, so it can be replayed.
 */
export function fuzzDecoder(
  t: Test,
  name: string,
  decode: (b: Uint8Array) => unknown,
  validSamples: (rnd: () => number) => Uint8Array,
  opts: { seed: number; cases: number },
): void {
  const rnd = prng(opts.seed)
  let rejected = 0
  let accepted = 0
  for (let i = 0; i < opts.cases * 2; i++) {
    const input = i < opts.cases ? randomBytes(rnd, int(rnd, 200)) : mutate(rnd, validSamples(rnd))
    try {
      decode(input)
      accepted++
    } catch (e) {
      if (!(e instanceof DecodeError)) {
        t.fail(`${name}: non-DecodeError ${(e as Error).name}: ${(e as Error).message}`, {
          seed: opts.seed,
          case: i,
          input: Buffer.from(input).toString('hex'),
        })
        return
      }
      rejected++
    }
  }
  // Mutations must actually be caught most of the time, or the fuzzer is not exercising anything.
  t.ok(rejected > opts.cases, `${name}: ${rejected} rejected, ${accepted} accepted (seed ${opts.seed})`)
}
