// Transfer checksum: xxhash128 over (index u32 LE, page bytes) for every page sent, in order.
// The backup recomputes it over what it staged; a mismatch means "do not apply".
import xxhash from 'xxhash-addon'

const { XXHash128 } = xxhash
const SEED = Buffer.alloc(8)

export class TransferChecksum {
  private readonly h = new XXHash128(SEED)
  private readonly idx = Buffer.allocUnsafe(4)

  addPages(indices: Uint32Array, data: Uint8Array, pageSize: number): void {
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    for (let i = 0; i < indices.length; i++) {
      this.idx.writeUInt32LE(indices[i])
      this.h.update(this.idx)
      this.h.update(buf.subarray(i * pageSize, (i + 1) * pageSize))
    }
  }

  addDeviceState(state: Uint8Array): void {
    this.h.update(Buffer.from(state.buffer, state.byteOffset, state.byteLength))
  }

  digest(): Uint8Array {
    return new Uint8Array(this.h.digest())
  }
}
