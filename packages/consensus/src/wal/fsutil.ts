import { promises as fsp } from 'node:fs'
import { join } from 'node:path'

// Directory fsync makes a create/rename/unlink durable; without it a crash can forget the new
// name even though the file's data was synced.
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/** Write temp + fsync + rename + fsync dir: readers see the old file or the whole new one. */
export async function atomicWriteFile(dir: string, name: string, bytes: Uint8Array): Promise<void> {
  const tmp = join(dir, `${name}.tmp`)
  const fh = await fsp.open(tmp, 'w')
  try {
    let off = 0
    while (off < bytes.length) {
      const { bytesWritten } = await fh.write(bytes, off, bytes.length - off, off)
      off += bytesWritten
    }
    await fh.datasync()
  } finally {
    await fh.close()
  }
  await fsp.rename(tmp, join(dir, name))
  await fsyncDir(dir)
}
