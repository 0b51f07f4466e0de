// Seeded PRNG (mulberry32) so every fuzz/random test is reproducible from its printed seed.
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export const int = (rnd: () => number, n: number) => Math.floor(rnd() * n)

export function randomBytes(rnd: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = int(rnd, 256)
  return b
}

/** A random mutation of a valid encoding: bit flips, truncation, extension, byte overwrite, splice. */
export function mutate(rnd: () => number, src: Uint8Array): Uint8Array {
  const kind = int(rnd, 5)
  if (kind === 0) {
    const b = src.slice()
    const flips = 1 + int(rnd, 4)
    for (let i = 0; i < flips && b.length > 0; i++) b[int(rnd, b.length)] ^= 1 << int(rnd, 8)
    return b
  }
  if (kind === 1) return src.slice(0, int(rnd, src.length))
  if (kind === 2) {
    const out = new Uint8Array(src.length + 1 + int(rnd, 16))
    out.set(src)
    out.set(randomBytes(rnd, out.length - src.length), src.length)
    return out
  }
  if (kind === 3) {
    const b = src.slice()
    if (b.length > 0) b[int(rnd, b.length)] = [0, 0xff, 0x7f, 0x80][int(rnd, 4)]
    return b
  }
  const at = int(rnd, src.length + 1)
  const ins = randomBytes(rnd, 1 + int(rnd, 8))
  const out = new Uint8Array(src.length + ins.length)
  out.set(src.subarray(0, at))
  out.set(ins, at)
  out.set(src.subarray(at), at + ins.length)
  return out
}
