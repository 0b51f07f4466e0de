// The digests a sync compares, for the pages it compares. Hash-scan dirty tracking has just
// hashed every page to find the dirty ones; hashing the union again would cost a full sync more
// than the scan itself (all of RAM, page by page). So the digests come from the tracker when it
// offers them for RAM as it is now and made them with this very hasher; otherwise they are
// hashed here.
import type { DirtyTracker, MemorySource } from '../vm/replicated-vm.js'
import type { PageHashing } from './sync-options.js'

/** Bytes per page digest in the sync protocol (128-bit). */
export const DIGEST_BYTES = 16

export interface PageDigests {
  readonly digests: Uint8Array
  /** False when they were taken from the tracker's scan. */
  readonly hashed: boolean
}

export async function digestsOf(
  o: { readonly tracker: DirtyTracker; readonly hasher: PageHashing },
  source: MemorySource,
  pageCount: number,
  pages: Uint32Array,
): Promise<PageDigests> {
  const known = await o.tracker.currentDigests?.()
  if (known && known.hasher === o.hasher && known.digests.byteLength === pageCount * DIGEST_BYTES) {
    // A copy: the tracker reuses its vector at the next collect()/reset().
    const out = new Uint8Array(pages.length * DIGEST_BYTES)
    const all = known.digests
    if (isEveryPage(pages, pageCount)) out.set(all)
    else
      for (let i = 0; i < pages.length; i++) {
        const at = pages[i]! * DIGEST_BYTES
        out.set(all.subarray(at, at + DIGEST_BYTES), i * DIGEST_BYTES)
      }
    return { digests: out, hashed: false }
  }
  return { digests: await o.hasher.hash(source, pages), hashed: true }
}

function isEveryPage(pages: Uint32Array, pageCount: number): boolean {
  if (pages.length !== pageCount) return false
  for (let i = 0; i < pages.length; i++) if (pages[i] !== i) return false
  return true
}
