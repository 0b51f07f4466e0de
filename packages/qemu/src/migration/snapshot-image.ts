// Reads the vmstate (a migration stream) back out of a snapshot image from saveSnapshotState:
// qcow2 header → the snapshot's table entry → its L1/L2 tables → the clusters past the end of the
// virtual disk where qcow2 keeps the vmstate. WHY: to compare two device states section by section
// (compare-state.ts reads streams), and to reject a malformed image before QEMU opens it.
// Only what QEMU writes here is supported: qcow2 v2/v3, one snapshot, no backing file, no
// encryption, no compressed or external-data clusters, standard (not extended) L2 entries.

const QCOW2_MAGIC = 0x514649fb
const OFFSET_MASK = 0x00fffffffffffe00n // bits 9–55 of L1/L2 entries
const COMPRESSED = 1n << 62n

export class SnapshotImageError extends Error {
  override readonly name = 'SnapshotImageError'
}

function need(cond: boolean, what: string): asserts cond {
  if (!cond) throw new SnapshotImageError(`malformed snapshot image: ${what}`)
}

/** The migration stream inside a snapshot image (a view of `image` where clusters are contiguous, else a copy). */
export function snapshotStream(image: Uint8Array): Buffer {
  const b = Buffer.from(image.buffer, image.byteOffset, image.byteLength)
  need(b.byteLength >= 104, `${b.byteLength} bytes is shorter than a qcow2 header`)
  need(b.readUInt32BE(0) === QCOW2_MAGIC, 'no qcow2 magic')
  const version = b.readUInt32BE(4)
  need(version === 2 || version === 3, `qcow2 version ${version}`)
  need(b.readBigUInt64BE(8) === 0n, 'has a backing file')
  const clusterBits = b.readUInt32BE(20)
  need(clusterBits >= 9 && clusterBits <= 21, `cluster bits ${clusterBits}`)
  const clusterSize = 1 << clusterBits
  const diskSize = b.readBigUInt64BE(24)
  need(b.readUInt32BE(32) === 0, 'encrypted')
  const snapshots = b.readUInt32BE(60)
  need(snapshots === 1, `${snapshots} snapshots, expected 1`)
  const snapshotsOffset = Number(b.readBigUInt64BE(64))
  if (version === 3) need((b.readBigUInt64BE(72) & ~1n) === 0n, 'unsupported incompatible features')
  const l2Bits = clusterBits - 3
  // qcow2_vm_state_offset: the first L1 index past the virtual disk, in guest address space.
  const perL1 = 1n << BigInt(clusterBits + l2Bits)
  const vmStateBase = ((diskSize + perL1 - 1n) / perL1) * perL1

  need(snapshotsOffset + 40 <= b.byteLength, 'snapshot table beyond the end')
  const e = snapshotsOffset
  const l1Offset = Number(b.readBigUInt64BE(e))
  const l1Size = b.readUInt32BE(e + 8)
  let vmStateSize = BigInt(b.readUInt32BE(e + 32))
  const extra = b.readUInt32BE(e + 36)
  if (extra >= 8) {
    need(e + 40 + 8 <= b.byteLength, 'snapshot extra data beyond the end')
    vmStateSize = b.readBigUInt64BE(e + 40)
  }
  need(vmStateSize > 0n && vmStateSize <= BigInt(b.byteLength), `vmstate size ${vmStateSize}`)
  need(l1Offset + l1Size * 8 <= b.byteLength, 'L1 table beyond the end')

  const size = Number(vmStateSize)
  const out: Buffer[] = []
  let firstAt = -1
  let contiguous = true
  for (let done = 0; done < size; ) {
    const guest = vmStateBase + BigInt(done)
    const l1Index = Number(guest / perL1)
    need(l1Index < l1Size, `vmstate offset ${guest} beyond the L1 table`)
    const l2Offset = Number(b.readBigUInt64BE(l1Offset + l1Index * 8) & OFFSET_MASK)
    need(l2Offset > 0 && l2Offset + clusterSize <= b.byteLength, `L2 table at ${l2Offset}`)
    const l2Index = Number((guest >> BigInt(clusterBits)) & ((1n << BigInt(l2Bits)) - 1n))
    const entry = b.readBigUInt64BE(l2Offset + l2Index * 8)
    need((entry & COMPRESSED) === 0n, 'compressed vmstate cluster')
    const cluster = Number(entry & OFFSET_MASK)
    need(cluster > 0, `vmstate cluster ${l2Index} unallocated`)
    const within = Number(guest % BigInt(clusterSize))
    const n = Math.min(clusterSize - within, size - done)
    need(cluster + within + n <= b.byteLength, `vmstate cluster at ${cluster} beyond the end`)
    if (firstAt < 0) firstAt = cluster + within
    else if (cluster + within !== firstAt + done) contiguous = false
    out.push(b.subarray(cluster + within, cluster + within + n))
    done += n
  }
  return contiguous ? b.subarray(firstAt, firstAt + size) : Buffer.concat(out)
}
