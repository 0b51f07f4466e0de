// Page-set arithmetic on ascending Uint32Arrays (dirty sets are sorted by contract).

/** Sorted union of two ascending sets. */
export function unionSorted(a: Uint32Array, b: Uint32Array): Uint32Array {
  const out = new Uint32Array(a.length + b.length)
  let i = 0
  let j = 0
  let n = 0
  while (i < a.length || j < b.length) {
    let v: number
    if (j >= b.length || (i < a.length && a[i] < b[j])) v = a[i++]
    else if (i >= a.length || b[j] < a[i]) v = b[j++]
    else {
      v = a[i++]
      j++
    }
    out[n++] = v
  }
  return out.subarray(0, n)
}

export function allPages(pageCount: number): Uint32Array {
  const out = new Uint32Array(pageCount)
  for (let i = 0; i < pageCount; i++) out[i] = i
  return out
}

/** Pages of `union` whose 16-byte hashes differ between `a` and `b` (same order as `union`). */
export function divergentPages(
  union: Uint32Array,
  a: Uint8Array,
  b: Uint8Array,
  hashBytes = 16,
): Uint32Array {
  const out = new Uint32Array(union.length)
  let n = 0
  for (let i = 0; i < union.length; i++) {
    const off = i * hashBytes
    for (let k = 0; k < hashBytes; k++) {
      if (a[off + k] !== b[off + k]) {
        out[n++] = union[i]
        break
      }
    }
  }
  return out.subarray(0, n)
}

/** Throws unless every index is < pageCount (the codec already checked ascending order). */
export function assertInRange(pages: Uint32Array, pageCount: number, what: string): void {
  if (pages.length > 0 && pages[pages.length - 1] >= pageCount) {
    throw new RangeError(`${what}: page ${pages[pages.length - 1]} out of range (VM has ${pageCount} pages)`)
  }
}
