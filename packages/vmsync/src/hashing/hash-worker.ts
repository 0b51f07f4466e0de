// Worker thread of PageHasher: reads the memory source itself and writes hashes into shared output.
import { parentPort } from 'node:worker_threads'
import {
  hashFile,
  hashShared,
  type PageSelection,
  type ScanTarget,
  scanFile,
  scanShared,
} from './hash-pages.js'
import type { HashJob, HashReply, WorkerReady } from './messages.js'

if (parentPort === null) throw new Error('hash-worker must run in a worker thread')
const port = parentPort

// WHY one reused chunk: touching fresh memory costs ~15 µs per page on these hosts; allocate once.
let chunk: Buffer = Buffer.alloc(0)

function chunkOf(bytes: number): Buffer {
  if (chunk.length < bytes) chunk = Buffer.alloc(bytes)
  return chunk.subarray(0, bytes)
}

port.on('message', (job: HashJob) => {
  let reply: HashReply
  try {
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
      const changed =
        job.source.kind === 'shared'
          ? scanShared(job.source.buffer, job.pageSize, job.from, job.to, target)
          : scanFile(job.source, job.pageSize, job.from, job.to, target, chunkOf(job.chunkBytes))
      Atomics.add(new Int32Array(sc.changedBlocks), 0, changed)
    } else {
      const sel: PageSelection = {
        indices: job.all ? null : new Uint32Array(job.indices),
        from: job.from,
        to: job.to,
      }
      const out = new Uint8Array(job.out)
      if (job.source.kind === 'shared') hashShared(job.source.buffer, job.pageSize, sel, out)
      else hashFile(job.source, job.pageSize, sel, out, chunkOf(job.chunkBytes))
    }
    reply = { id: job.id, ok: true }
  } catch (err) {
    reply = { id: job.id, ok: false, error: err instanceof Error ? err.message : String(err) }
  }
  port.postMessage(reply)
})

port.postMessage({ ready: true } satisfies WorkerReady)
