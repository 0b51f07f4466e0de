// Worker thread of PageHasher: reads the memory source itself and writes hashes into shared output.
import { parentPort } from 'node:worker_threads'
import { hashFile, hashShared, type PageSelection } from './hash-pages.js'
import type { HashJob, HashReply, WorkerReady } from './messages.js'

if (parentPort === null) throw new Error('hash-worker must run in a worker thread')
const port = parentPort

// WHY one reused chunk: touching fresh memory costs ~15 µs per page on these hosts; allocate once.
let chunk: Buffer = Buffer.alloc(0)

port.on('message', (job: HashJob) => {
  let reply: HashReply
  try {
    const sel: PageSelection = {
      indices: job.all ? null : new Uint32Array(job.indices),
      from: job.from,
      to: job.to,
    }
    const out = new Uint8Array(job.out)
    if (job.source.kind === 'shared') {
      hashShared(job.source.buffer, job.pageSize, sel, out)
    } else {
      if (chunk.length < job.chunkBytes) chunk = Buffer.alloc(job.chunkBytes)
      hashFile(job.source, job.pageSize, sel, out, chunk.subarray(0, job.chunkBytes))
    }
    reply = { id: job.id, ok: true }
  } catch (err) {
    reply = { id: job.id, ok: false, error: err instanceof Error ? err.message : String(err) }
  }
  port.postMessage(reply)
})

port.postMessage({ ready: true } satisfies WorkerReady)
