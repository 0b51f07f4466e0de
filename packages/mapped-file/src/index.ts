// @plover/mapped-file: read-only shared memory mappings of a file (mmap), for hashing a guest's
// RAM file without copying it. A tiny N-API addon built at install time with node-gyp; when it is
// missing (no compiler, install scripts blocked), `mappedFileSupport()` says why and callers fall
// back to reads.
import { createRequire } from 'node:module'

interface Native {
  map(path: string, offset: number, length: number): ArrayBuffer
  unmap(buffer: ArrayBuffer): void
}

let native: Native | undefined
let loadError: string | undefined
try {
  // WHY createRequire: a .node addon is loaded by CommonJS require only.
  native = createRequire(import.meta.url)('../build/Release/mapped_file.node') as Native
} catch (err) {
  loadError = `the native part of @plover/mapped-file is not built (${(err as Error).message.split('\n')[0]}); run \`node-gyp rebuild\` in its folder (needs python3, make and a C compiler)`
}

/** Whether mappings work here; `reason` says why not. */
export function mappedFileSupport():
  | { readonly available: true }
  | { readonly available: false; readonly reason: string } {
  return native ? { available: true } : { available: false, reason: loadError ?? 'unknown' }
}

/** Bytes [offset, offset + length) of a file, mapped read-only and shared. */
export interface FileMapping {
  readonly path: string
  readonly offset: number
  readonly length: number
  /** A view of the mapping; writes by other processes (a running guest) show through. Empty once closed. */
  readonly bytes: Uint8Array
  readonly closed: boolean
  /** Unmaps now (every view of it becomes empty). Idempotent. Without it, garbage collection unmaps. */
  close(): void
}

/**
 * Maps [offset, offset + length) of `path` read-only. Throws (never crashes) when the addon is not
 * built, the file cannot be opened, is shorter than offset + length (touching beyond the end of a
 * file would raise SIGBUS), or the offset is not page-aligned.
 *
 * The file must not shrink while mapped: a read of a page beyond its new end kills the process
 * with SIGBUS. QEMU never shrinks a guest's RAM file.
 */
export function mapFile(path: string, offset: number, length: number): FileMapping {
  if (!native) throw new Error(loadError)
  const buffer = native.map(path, offset, length)
  const n = native
  const bytes = new Uint8Array(buffer)
  let closed = false
  return {
    path,
    offset,
    length,
    bytes,
    get closed() {
      return closed
    },
    close() {
      if (closed) return
      closed = true
      n.unmap(buffer)
    },
  }
}
