// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum used by ext4/iSCSI/etcd.
// Table-driven, slicing-by-8, so checksumming a 4 KiB entry costs a few microseconds.

const POLY = 0x82f63b78

const TABLES: Uint32Array[] = (() => {
  const t0 = new Uint32Array(256)
  for (let i = 0; i < 256; i++) {
    let c = i
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1
    t0[i] = c >>> 0
  }
  const tables = [t0]
  for (let s = 1; s < 8; s++) {
    const prev = tables[s - 1]
    const t = new Uint32Array(256)
    for (let i = 0; i < 256; i++) t[i] = ((prev[i] >>> 8) ^ t0[prev[i] & 0xff]) >>> 0
    tables.push(t)
  }
  return tables
})()

/** Continue a CRC-32C over `bytes[start, end)`; pass the previous result as `crc` (0 to start). */
export function crc32c(bytes: Uint8Array, crc = 0, start = 0, end = bytes.length): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES
  let c = ~crc >>> 0
  let i = start
  for (; i + 8 <= end; i += 8) {
    const a = (c ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24))) >>> 0
    c =
      t7[a & 0xff] ^
      t6[(a >>> 8) & 0xff] ^
      t5[(a >>> 16) & 0xff] ^
      t4[a >>> 24] ^
      t3[bytes[i + 4]] ^
      t2[bytes[i + 5]] ^
      t1[bytes[i + 6]] ^
      t0[bytes[i + 7]]
  }
  for (; i < end; i++) c = t0[(c ^ bytes[i]) & 0xff] ^ (c >>> 8)
  return ~c >>> 0
}
