// The digests a sync compares, for the pages it compares. Hash-scan dirty tracking has just
// hashed every page to find the dirty ones; hashing the union again would cost a full sync more
// than the scan itself (all of RAM, page by page). So the digests come from the tracker when it
// offers them for RAM as it is now and made them with this very hasher; otherwise they are
// hashed here.
import { HASH_BYTES } from '../hashing/messages.js'
import type { SyncSideOptions } from './sync-options.js'

export interface PageDigests {
  readonly digests: Uint8Array
  /** False when they were taken from the tracker's scan. */
  readonly hashed: boolean
}

export async function digestsOf(
  o: Pick<SyncSideOptions, 'vm' | 'tracker' | 'hasher'>,
  pages: Uint32Array,
): Promise<PageDigests> {
  const { pageCount, memorySource } = o.vm
  const known = await o.tracker.currentDigests?.()
  if (known && known.hasher === o.hasher && known.digests.byteLength === pageCount * HASH_BYTES) {
    // A copy: the tracker reuses its vector at the next collect()/reset().
    const out = new Uint8Array(pages.length * HASH_BYTES)
    const all = known.digests
    if (isEveryPage(pages, pageCount)) out.set(all)
    else
      for (let i = 0; i < pages.length; i++) {
        const at = pages[i]! * HASH_BYTES
        out.set(all.subarray(at, at + HASH_BYTES), i * HASH_BYTES)
      }
    return { digests: out, hashed: false }
  }
  return { digests: await o.hasher.hash(memorySource, pages), hashed: true }
}

function isEveryPage(pages: Uint32Array, pageCount: number): boolean {
  if (pages.length !== pageCount) return false
  for (let i = 0; i < pages.length; i++) if (pages[i] !== i) return false
  return true
}
