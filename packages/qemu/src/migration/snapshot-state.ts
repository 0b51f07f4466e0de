// Device state as a qcow2 internal snapshot: `snapshot-save` on the primary, `snapshot-load` into
// the backup's own, running (paused) QEMU. WHY: stock QEMU takes an incoming migration only once,
// at startup, so the stream form (device-state.ts) must load into a fresh standby process at every
// sync (~40 ms on the e2e bench, plus a QEMU started per sync); snapshot-load loads in place.
// With x-ignore-shared on, the snapshot's vmstate holds what the stream holds (CPU, devices, the
// small non-shared RAM blocks) and never the shared RAM file. The state travels as the bytes of a
// small qcow2 image (qcow2 magic first, so it cannot be mistaken for a migration stream).
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import type { TransferStats } from './device-state.js'
import {
  asMigrationError,
  MigrationFailedError,
  type MigrationSide,
  MigrationTimeoutError,
} from './errors.js'
import {
  DEFAULT_TRANSFER_TIMEOUT_MS,
  enableIgnoreShared,
  ensureStopped,
  type MigrationQmp,
} from './migration-steps.js'
import { snapshotStream } from './snapshot-image.js'

/** "QFI\xfb": the first bytes of every qcow2 image. A migration stream starts with "QEVM". */
const QCOW2_MAGIC = Buffer.from([0x51, 0x46, 0x49, 0xfb])
const NODE = 'plover-vmstate'
const TAG = 'plover-sync'
// The image's virtual disk; qcow2 keeps the vmstate past its end. No guest device uses it.
const IMAGE_BYTES = 1 << 20

export function isSnapshotState(state: Uint8Array): boolean {
  return state.byteLength >= 4 && QCOW2_MAGIC.equals(Buffer.from(state.buffer, state.byteOffset, 4))
}

export interface SnapshotStateOptions {
  /** Where the image file lives while QEMU uses it (the VM's run dir); removed afterwards. */
  readonly path: string
  readonly timeoutMs?: number
}

interface JobInfo {
  readonly id: string
  readonly status: string
  readonly error?: string
}

/** Waits for a job to conclude; dismisses it; throws with QEMU's reason if it failed. */
async function finishJob(
  qmp: MigrationQmp,
  id: string,
  side: MigrationSide,
  timeoutMs: number,
): Promise<void> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const jobs = await qmp.execute<JobInfo[]>('query-jobs')
    const job = jobs.find((j) => j.id === id)
    if (!job) throw new MigrationFailedError(side, `job ${id} disappeared`, undefined)
    if (job.status === 'concluded') {
      await qmp.execute('job-dismiss', { id })
      if (job.error) throw new MigrationFailedError(side, `${id}: ${job.error}`, job.status)
      return
    }
    if (performance.now() > deadline) {
      await qmp.execute('job-cancel', { id }).catch(() => undefined)
      throw new MigrationTimeoutError(side, timeoutMs, job.status)
    }
    await sleep(1)
  }
}

/** Opens the image at `path` as a block node without a guest device, runs `fn`, closes it again. */
async function withImage<T>(qmp: MigrationQmp, path: string, fn: () => Promise<T>): Promise<T> {
  // WHY no-flush: the image is scratch space on tmpfs, handed on as bytes; flushes buy nothing.
  await qmp.execute('blockdev-add', {
    driver: 'qcow2',
    'node-name': NODE,
    file: { driver: 'file', filename: path },
    cache: { 'no-flush': true },
  })
  try {
    return await fn()
  } finally {
    await qmp.execute('blockdev-del', { 'node-name': NODE }).catch(() => undefined)
  }
}

/** An empty qcow2 image, made by QEMU itself (blockdev-create): no qemu-img needed. */
async function emptyImage(qmp: MigrationQmp, path: string, timeoutMs: number): Promise<Buffer> {
  writeFileSync(path, '')
  const fileNode = `${NODE}-file`
  await qmp.execute('blockdev-add', { driver: 'file', 'node-name': fileNode, filename: path })
  try {
    await qmp.execute('blockdev-create', {
      'job-id': 'plover-create',
      options: { driver: 'qcow2', file: fileNode, size: IMAGE_BYTES },
    })
    await finishJob(qmp, 'plover-create', 'source', timeoutMs)
  } finally {
    await qmp.execute('blockdev-del', { 'node-name': fileNode }).catch(() => undefined)
  }
  return readFileSync(path)
}

const templates = new WeakMap<MigrationQmp, Buffer>()

/**
 * The common half of a save and a load: with the VM stopped and x-ignore-shared on, writes
 * `image()` to the scratch file, attaches it, runs `snapshot-save` or `snapshot-load` on it and
 * waits for the job; returns the file's bytes afterwards and the time taken. The file is removed
 * whatever happens; any failure is a MigrationFailedError or MigrationTimeoutError of `side`.
 */
async function snapshotJob(
  qmp: MigrationQmp,
  op: 'save' | 'load',
  image: (timeoutMs: number) => Promise<Uint8Array>,
  options: SnapshotStateOptions,
): Promise<{ image: Buffer; durationMs: number }> {
  const side: MigrationSide = op === 'save' ? 'source' : 'destination'
  const timeoutMs = options.timeoutMs ?? DEFAULT_TRANSFER_TIMEOUT_MS
  await ensureStopped(qmp)
  await enableIgnoreShared(qmp)
  const started = performance.now()
  try {
    writeFileSync(options.path, await image(timeoutMs))
    await withImage(qmp, options.path, async () => {
      const id = `plover-${op}`
      await qmp.execute(`snapshot-${op}`, { 'job-id': id, tag: TAG, vmstate: NODE, devices: [NODE] })
      await finishJob(qmp, id, side, timeoutMs)
    })
    return { image: readFileSync(options.path), durationMs: performance.now() - started }
  } catch (err) {
    throw asMigrationError(err, side)
  } finally {
    rmSync(options.path, { force: true })
  }
}

/**
 * Saves the stopped VM's device state as a snapshot in a fresh image and returns the image's
 * bytes. The VM stays paused. A failure leaves it paused and resumable (`cont`).
 */
export async function saveSnapshotState(
  qmp: MigrationQmp,
  options: SnapshotStateOptions,
): Promise<{ state: Buffer; stats: TransferStats }> {
  const { image, durationMs } = await snapshotJob(
    qmp,
    'save',
    async (timeoutMs) => {
      let template = templates.get(qmp)
      if (!template) {
        template = await emptyImage(qmp, options.path, timeoutMs)
        templates.set(qmp, template)
      }
      return template
    },
    options,
  )
  return { state: image, stats: { durationMs, streamBytes: image.byteLength } }
}

/**
 * Loads a state from saveSnapshotState into this QEMU, in place: QEMU resets the machine and loads
 * CPU and device state (RAM comes from the shared file, untouched). The VM must be stopped and
 * ends paused. A failure leaves the machine in an undefined state: treat the VM as lost.
 */
export async function loadSnapshotState(
  qmp: MigrationQmp,
  state: Uint8Array,
  options: SnapshotStateOptions,
): Promise<TransferStats> {
  // WHY parse first: snapshot-load resets the machine before it reads the image; a malformed image
  // from a peer must be refused while this VM is still intact.
  try {
    snapshotStream(state)
  } catch (err) {
    throw new MigrationFailedError('destination', (err as Error).message, undefined)
  }
  const { durationMs } = await snapshotJob(qmp, 'load', async () => state, options)
  return { durationMs, streamBytes: state.byteLength }
}
