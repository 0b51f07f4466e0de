// Parses /proc/PID/maps to find where a process (QEMU) mapped a file (the guest's RAM file):
// soft-dirty bits live in the page tables of that virtual range, not in the file.

export interface MapsEntry {
  readonly start: number
  readonly end: number
  readonly perms: string
  /** Offset into the mapped file. */
  readonly offset: number
  readonly inode: number
  /** Path, '[heap]'-style pseudo name, or '' for anonymous memory. Kernel suffix ' (deleted)' is kept. */
  readonly path: string
}

/** A piece of the file mapped at a virtual address. */
export interface FileSegment {
  readonly vaddr: number
  readonly fileOffset: number
  readonly length: number
}

// Addresses fit in 47 bits on x86-64 user space, so plain numbers are exact.
const LINE = /^([0-9a-f]+)-([0-9a-f]+)\s+(\S+)\s+([0-9a-f]+)\s+\S+\s+(\d+)\s*(.*)$/

export function parseMaps(text: string): MapsEntry[] {
  const entries: MapsEntry[] = []
  for (const line of text.split('\n')) {
    if (line === '') continue
    const m = LINE.exec(line)
    if (!m) throw new Error(`unparsable /proc/PID/maps line: ${JSON.stringify(line)}`)
    entries.push({
      start: Number.parseInt(m[1], 16),
      end: Number.parseInt(m[2], 16),
      perms: m[3],
      offset: Number.parseInt(m[4], 16),
      inode: Number(m[5]),
      path: m[6],
    })
  }
  return entries
}

/**
 * The shared mappings of `path` that cover file bytes [fileOffset, fileOffset+size), clipped to
 * that window, ascending by file offset. QEMU maps the RAM file once, but madvise/mprotect can split
 * a mapping into several entries. Throws when part of the window is not mapped.
 */
export function fileSegments(
  entries: MapsEntry[],
  path: string,
  fileOffset: number,
  size: number,
): FileSegment[] {
  const end = fileOffset + size
  const segments: FileSegment[] = []
  for (const e of entries) {
    const mappedPath = e.path.endsWith(' (deleted)') ? e.path.slice(0, -' (deleted)'.length) : e.path
    if (mappedPath !== path || e.perms[3] !== 's') continue
    const lo = Math.max(e.offset, fileOffset)
    const hi = Math.min(e.offset + (e.end - e.start), end)
    if (hi <= lo) continue
    segments.push({ vaddr: e.start + (lo - e.offset), fileOffset: lo, length: hi - lo })
  }
  segments.sort((a, b) => a.fileOffset - b.fileOffset)
  let covered = fileOffset
  for (const s of segments) {
    if (s.fileOffset > covered) break
    covered = Math.max(covered, s.fileOffset + s.length)
  }
  if (covered < end) {
    throw new Error(`${path} is mapped shared only up to file offset ${covered}, need ${end}`)
  }
  return segments
}
