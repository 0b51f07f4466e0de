// The simulated VM's source of nondeterminism: the "physical world" (timer jitter, interrupt
// timing), deliberately NOT guest state. Two VMs fed the same inputs read slightly different clocks
// and occasionally take a different free-list entry, so most pages match and a few do not.
// Seeded per instance so a test run can be reproduced.

export interface NoiseOptions {
  /** PRNG seed; default random. */
  readonly seed?: number
  /** Max extra ms added to each clock reading (host scheduling jitter). Default 3. */
  readonly clockJitterMs?: number
  /** Probability that an allocation takes the second free-list entry. Default 1/32. */
  readonly allocSwapProbability?: number
}

export class Noise {
  private state: number
  readonly clockJitterMs: number
  readonly allocSwapProbability: number

  constructor(options: NoiseOptions = {}) {
    this.state = (options.seed ?? Math.floor(Math.random() * 0xffffffff)) >>> 0 || 0x9e3779b9
    this.clockJitterMs = options.clockJitterMs ?? 3
    this.allocSwapProbability = options.allocSwapProbability ?? 1 / 32
  }

  /** xorshift32 in [0, 1). */
  next(): number {
    let x = this.state
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    this.state = x >>> 0
    return this.state / 0x100000000
  }

  jitterMs(): number {
    return this.next() * this.clockJitterMs
  }

  swapAllocation(): boolean {
    return this.allocSwapProbability > 0 && this.next() < this.allocSwapProbability
  }
}
