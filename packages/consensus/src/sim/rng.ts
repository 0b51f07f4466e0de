// Seeded PRNG (mulberry32): the simulation's only source of randomness, so a seed replays
// the exact same run.
export class Rng {
  private a: number

  constructor(seed: number) {
    this.a = seed >>> 0
  }

  next(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0
    let x = this.a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n)
  }

  chance(p: number): boolean {
    return this.next() < p
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]
  }

  /** An independent stream (e.g. the random() given to one core). */
  fork(): Rng {
    return new Rng(Math.floor(this.next() * 2 ** 32))
  }
}
