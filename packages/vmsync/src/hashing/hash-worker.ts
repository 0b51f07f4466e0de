// Worker thread of PageHasher: reads the memory source itself and writes hashes into shared output.
// A file source is hashed from a memory mapping when one is available (mapped-memory.ts), else
// read with pread into a reused chunk.
import { parentPort } from 'node:worker_threads'
import { hashFile, hashView, type PageSelection, type ScanTarget, scanFile, scanView } from './hash-pages.js'
import { loadMapper, MappedMemory } from './mapped-memory.js'
import type { HashJob, HashReply, WorkerReady } from './messages.js'

if (parentPort === null) throw new Error('hash-worker must run in a worker thread')
const port = parentPort

// WHY one reused chunk: touching fresh memory costs ~15 µs per page on these hosts; allocate once.
let chunk: Buffer = Buffer.alloc(0)

function chunkOf(bytes: number): Buffer {
  if (chunk.length < bytes) chunk = Buffer.alloc(bytes)
  return chunk.subarray(0, bytes)
}

const MAP_ALIGN = 4096
const mapper = await loadMapper()
const mapped = 'mapFile' in mapper ? new MappedMemory(mapper.mapFile) : null

/** The whole source as memory, or null to read the file with pread. */
function memoryOf(job: HashJob): Uint8Array | null {
  if (job.source.kind === 'shared') return new Uint8Array(job.source.buffer)
  if (job.fileReads === 'pread') return null
  // WHY: mmap needs a page-aligned offset; 'auto' reads such a source instead.
  if (job.fileReads === 'auto' && job.source.offset % MAP_ALIGN !== 0) return null
  if (mapped) return mapped.view(job.source)
  if (job.fileReads === 'mmap')
    throw new Error(`cannot map ${job.source.path}: ${(mapper as { reason: string }).reason}`)
  return null
}

port.on('message', (job: HashJob) => {
  let reply: HashReply
  try {
    const mem = memoryOf(job)
    if (job.scan) {
      const sc = job.scan
      const target: ScanTarget = {
        blockPages: sc.blockPages,
        pages: new Uint8Array(job.out),
        blocks: new Uint8Array(sc.blocksOut),
        previous: sc.previous
          ? { blocks: new Uint8Array(sc.previous.blocks), pages: new Uint8Array(sc.previous.pages) }
          : null,
      }
      const changed = mem
        ? scanView(mem, job.pageSize, job.from, job.to, target)
        : scanFile(
            job.source as Extract<HashJob['source'], { kind: 'file' }>,
            job.pageSize,
            job.from,
            job.to,
            target,
            chunkOf(job.chunkBytes),
          )
      Atomics.add(new Int32Array(sc.changedBlocks), 0, changed)
    } else {
      const sel: PageSelection = {
        indices: job.all ? null : new Uint32Array(job.indices),
        from: job.from,
        to: job.to,
      }
      const out = new Uint8Array(job.out)
      if (mem) hashView(mem, job.pageSize, sel, out)
      else
        hashFile(
          job.source as Extract<HashJob['source'], { kind: 'file' }>,
          job.pageSize,
          sel,
          out,
          chunkOf(job.chunkBytes),
        )
    }
    reply = {
      id: job.id,
      ok: true,
      ...(job.source.kind === 'file' ? { fileRead: mem ? 'mmap' : 'pread' } : {}),
    }
  } catch (err) {
    reply = { id: job.id, ok: false, error: err instanceof Error ? err.message : String(err) }
  }
  port.postMessage(reply)
})

port.postMessage({
  ready: true,
  mappedFiles: 'mapFile' in mapper ? { available: true } : { available: false, reason: mapper.reason },
} satisfies WorkerReady)
