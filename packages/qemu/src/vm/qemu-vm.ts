// ReplicatedVm over a stock QEMU: run control over QMP, RAM through the shared RAM file, device
// state with x-ignore-shared, frames through the filter-redirector sockets. Device state has two
// forms (`deviceStateFormat`): a qcow2 internal snapshot ('snapshot', default), which QEMU loads
// into this very process (snapshot-load); or a migration stream ('migration'), which QEMU accepts
// only when started with -incoming, so importDeviceState loads it into a pre-spawned standby that
// maps the same RAM file and swaps it in, stopping the old process. importDeviceState takes
// either form, whatever this VM exports.
import { join } from 'node:path'
import type {
  DirtyTracker,
  MemorySource,
  ReplicatedVm,
  ReplicatedVmEvents,
  VmExitInfo,
  VmRunState,
} from '@plover/vmsync'
import { EventEmitter } from 'eventemitter3'
import { HashScanTracker, type PageHashing } from '../dirty/hash-scan-tracker.js'
import { type DirtyTrackerKind, type SelectedTracker, selectDirtyTracker } from '../dirty/select-tracker.js'
import type { SoftDirtyProbeReport } from '../dirty/soft-dirty-probe.js'
import { FrameChannel, type FrameChannelCounters } from '../frames/frame-channel.js'
import { TcpAckGate, type TcpAckGateCounters, type TcpAckGateOptions } from '../frames/tcp-ack-gate.js'
import type { QemuExit, QemuProcess } from '../launch/qemu-process.js'
import { DEFAULT_MEMORY_MIB } from '../launch/vm-config.js'
import { VmNotPausedError } from '../memory/errors.js'
import { GuestMemory } from '../memory/guest-memory.js'
import { exportDeviceState, importDeviceState, type TransferStats } from '../migration/device-state.js'
import { isSnapshotState, loadSnapshotState, saveSnapshotState } from '../migration/snapshot-state.js'
import { incomingSocketPath, type StandbyPool } from '../migration/standby-pool.js'
import { NoStandbyError, VmExitedError } from './errors.js'

export interface QemuVmOptions {
  /** A launched QEMU: a booted guest, or a standby that already loaded its state. */
  readonly process: QemuProcess
  /** vmsync's PageHasher (or anything hashing pages of a MemorySource): used by hash-scan tracking. */
  readonly hasher: PageHashing
  /** Source of fresh standbys mapping this VM's RAM file; importing a migration stream needs it. */
  readonly standbys?: StandbyPool
  /**
   * What exportDeviceState produces: 'snapshot' (default; a qcow2 image with one internal
   * snapshot, loaded in place by the importer) or 'migration' (a migration stream; the importer
   * needs a standby pool).
   */
  readonly deviceStateFormat?: DeviceStateFormat
  /** Forces a dirty-tracking kind; by default the soft-dirty probe decides. */
  readonly dirtyTracking?: DirtyTrackerKind
  readonly softDirtyProbe?: SoftDirtyProbeReport
  /** Budget of one device-state transfer (default 30 s). */
  readonly transferTimeoutMs?: number
  /** Delete the RAM file on close (default false). */
  readonly removeRamOnClose?: boolean
  /**
   * Holds an injected TCP segment whose ACK covers bytes this guest has not sent yet, until its
   * outputs catch up (default on, 2 s bound; `false` disables). See TcpAckGate and the note in
   * QemuVm.injectFrame.
   */
  readonly tcpAckGate?: boolean | Omit<TcpAckGateOptions, 'canHold'>
  readonly log?: (message: string) => void
}

export type DeviceStateFormat = 'snapshot' | 'migration'

/** QemuVm's events beyond ReplicatedVm's (on `vm.host`: the ReplicatedVm event map is closed). */
export interface QemuVmHostEvents {
  /** A frame from the network side of the NIC, diverted to Node before reaching the guest. */
  'net-frame': (frame: Buffer) => void
  /** importDeviceState replaced the QEMU process. */
  swapped: (next: QemuProcess, previous: QemuProcess) => void
}

export class QemuVm extends EventEmitter<ReplicatedVmEvents> implements ReplicatedVm {
  /** Host-side events: network frames and process swaps. Stable across swaps. */
  readonly host = new EventEmitter<QemuVmHostEvents>()
  readonly pageSize: number
  readonly pageCount: number
  readonly memorySource: MemorySource
  /** Pages changed since the last reset (the VM must be paused); kind and probe in `dirtyInfo`. */
  readonly dirty: DirtyTracker
  #process: QemuProcess
  #frames: FrameChannel | undefined
  readonly #ackGate: TcpAckGate | undefined
  #state: VmRunState = 'running'
  /** Bumped whenever guest RAM may change (resume, writePages, process swap); keys cached scans. */
  #changes = 0
  /** Pages written by writePages since the last tracker reset (soft-dirty cannot see pwrite). */
  #writtenSinceReset: Uint8Array
  #tracker: SelectedTracker | undefined
  #trackerPid = 0
  #lastExport: TransferStats | undefined
  #exported: { state: Uint8Array; stamp: number; process: QemuProcess } | undefined
  #lastImport: TransferStats | undefined
  #transfers = 0
  #closing: Promise<void> | undefined
  /** Replaced processes still shutting down; close() waits for them. */
  readonly #retiring = new Set<Promise<unknown>>()

  private constructor(
    private readonly options: QemuVmOptions,
    private readonly memory: GuestMemory,
  ) {
    super()
    this.#process = options.process
    this.pageSize = memory.pageSize
    this.pageCount = memory.pageCount
    this.memorySource = memory.source
    this.#writtenSinceReset = new Uint8Array(this.pageCount)
    const gate = options.tcpAckGate ?? true
    this.#ackGate =
      gate === false
        ? undefined
        : new TcpAckGate({ ...(gate === true ? {} : gate), canHold: () => this.#state === 'running' })
    this.dirty = {
      collect: async () => this.#withWritten(await (await this.#dirtyTracker()).collect()),
      reset: async () => {
        await (await this.#dirtyTracker()).reset()
        this.#writtenSinceReset.fill(0)
      },
      currentDigests: async () => (await this.#dirtyTracker()).currentDigests?.(),
    }
  }

  static async open(options: QemuVmOptions): Promise<QemuVm> {
    const proc = options.process
    const size = (proc.config.memoryMiB ?? DEFAULT_MEMORY_MIB) * 1024 * 1024
    let vm: QemuVm | undefined
    const memory = await GuestMemory.open({
      path: proc.paths.ramPath,
      size,
      isPaused: () => vm?.runState === 'paused',
    })
    vm = new QemuVm(options, memory)
    await vm.#adopt(proc)
    return vm
  }

  get runState(): VmRunState {
    return this.#state
  }

  get process(): QemuProcess {
    return this.#process
  }

  /** The four redirector sockets, when the NIC has them (net side: toNet, 'net-frame'). */
  get frames(): FrameChannel | undefined {
    return this.#frames
  }

  get frameCounters(): FrameChannelCounters | undefined {
    return this.#frames?.counters
  }

  /** The TCP ACK gate's counters (undefined when disabled). */
  get ackGateCounters(): TcpAckGateCounters | undefined {
    return this.#ackGate?.counters
  }

  /** Which dirty tracker runs and why (after the first reset/collect). */
  get dirtyInfo(): SelectedTracker | undefined {
    return this.#tracker
  }

  /**
   * Digests of every page from the hash-scan tracker's last scan (page p at p*digestBytes), while
   * guest RAM cannot have changed since: the sync protocol can take the digests of the dirty pages
   * from here instead of hashing them again. Undefined with soft-dirty tracking or once stale.
   */
  get pageHashes(): Buffer | undefined {
    const tracker = this.#tracker?.tracker
    return tracker instanceof HashScanTracker ? tracker.currentHashes : undefined
  }

  get lastExport(): TransferStats | undefined {
    return this.#lastExport
  }

  get lastImport(): TransferStats | undefined {
    return this.#lastImport
  }

  async pause(): Promise<void> {
    this.#alive()
    if (this.#state === 'paused') return
    await this.#process.qmp.stop()
    this.#state = 'paused'
    // WHY release: a paused guest cannot catch up, and a caller may wait for the injection before
    // it resumes (deadlock). QEMU queues the frames until the next `cont`. (pause itself never
    // waits for a held frame; while paused nothing is held: canHold.)
    this.#ackGate?.releaseAll()
  }

  async resume(): Promise<void> {
    this.#alive()
    if (this.#state === 'running') return
    // WHY count first: a scan racing with the resume must not be taken as current afterwards.
    this.#changes++
    await this.#process.qmp.cont()
    this.#state = 'running'
  }

  readPages(indices: Uint32Array, dst: Uint8Array): Promise<void> {
    this.#alive()
    return this.memory.readPages(indices, dst)
  }

  async writePages(indices: Uint32Array, src: Uint8Array): Promise<void> {
    this.#alive()
    const before = this.#changes++
    await this.memory.writePages(indices, src)
    for (const p of indices) this.#writtenSinceReset[p] = 1
    const tracker = this.#tracker?.tracker
    if (tracker instanceof HashScanTracker) tracker.noteWritten(indices, before, this.#changes)
    // The guest's memory (its TCP state included) now comes from elsewhere: restart tracking.
    this.#ackGate?.reset()
  }

  async exportDeviceState(): Promise<Uint8Array> {
    this.#alive()
    if (this.#state !== 'paused') throw new VmNotPausedError('exportDeviceState')
    // QEMU refuses a second migration out of `postmigrate` ("paused due to previous migration").
    // Nothing but `cont` changes device state there, so the last export is still exact.
    const cached = this.#exported
    if (cached && cached.stamp === this.#changes && cached.process === this.#process) return cached.state
    const { runDir } = this.#process.paths
    const timeoutMs = this.options.transferTimeoutMs
    const { state, stats } =
      (this.options.deviceStateFormat ?? 'snapshot') === 'snapshot'
        ? await saveSnapshotState(this.#process.qmp, {
            path: join(runDir, `export-${++this.#transfers}.qcow2`),
            timeoutMs,
          })
        : await exportDeviceState(this.#process.qmp, {
            socketPath: join(runDir, `export-${++this.#transfers}.sock`),
            timeoutMs,
          })
    this.#lastExport = stats
    this.#exported = { state, stamp: this.#changes, process: this.#process }
    return state
  }

  async importDeviceState(state: Uint8Array): Promise<void> {
    this.#alive()
    if (this.#state !== 'paused') throw new VmNotPausedError('importDeviceState')
    if (isSnapshotState(state)) return this.#loadInPlace(state)
    const pool = this.options.standbys
    if (!pool) throw new NoStandbyError('importDeviceState needs a standby pool mapping this VM’s RAM file')
    const standby = await pool.take()
    try {
      if (standby.paths.ramPath !== this.#process.paths.ramPath) {
        throw new NoStandbyError(
          `standby maps ${standby.paths.ramPath}, this VM ${this.#process.paths.ramPath}`,
        )
      }
      this.#lastImport = await importDeviceState(standby.qmp, state, {
        socketPath: incomingSocketPath(standby),
        armed: pool.isArmed(standby),
        timeoutMs: this.options.transferTimeoutMs,
      })
    } catch (err) {
      await standby.stop()
      throw err
    }
    const previous = this.#process
    await this.#adopt(standby)
    this.#deviceStateLoaded()
    // WHY in the background: QEMU's quit takes tens of ms and the sync's pause must not wait for
    // it; the old process is stopped and never touches the RAM file again. WHY keep the RAM file:
    // the new process maps it.
    const retiring = previous.stop({ removeRam: false }).finally(() => this.#retiring.delete(retiring))
    this.#retiring.add(retiring)
    this.host.emit('swapped', standby, previous)
  }

  /**
   * Injects a frame toward the guest. With the ACK gate, a TCP segment acknowledging bytes this
   * guest has not sent yet waits (bounded) until its outputs show them: a backup runs behind its
   * primary and Linux would drop such a segment, payload included. Order is kept: the gate
   * resolves admissions in call order and a held frame blocks later ones (vmsync's
   * InputDelivery also awaits each call).
   *
   * WHY enabling it on a primary is safe: a client can only acknowledge bytes it received, and
   * every byte it received left this guest as a 'frame-out' frame, which the gate observes before
   * the event is emitted (so before any output buffer can release it). A primary's SND.NXT as
   * seen by the gate is therefore never behind a client's ACK and nothing is held (measured: 0
   * holds over a redis-benchmark session, test/frames/redis-relay.test.ts). Unknown flows are
   * never held. The one exception, bounded: a flow the gate first sees mid-stream (the VM was
   * opened on established connections, or promoted after a sync reset) whose first observed
   * output is a retransmission; one hold then times out and the flow is no longer gated.
   * Under vmsync's output commit a client only acknowledges bytes of committed epochs, which a
   * synced backup has sent too, so on a backup the gate matters when outputs leave before the
   * backup's sync (an unprotected primary, or no output commit as in bench/src/qemu/divergence.ts).
   */
  async injectFrame(frame: Uint8Array): Promise<void> {
    this.#alive()
    if (!this.#frames) throw new Error('this VM has no filter-redirector NIC')
    if (this.#ackGate) {
      await this.#ackGate.admit(frame)
      this.#alive()
      // The process may have been swapped while the frame waited.
      if (!this.#frames) throw new Error('this VM has no filter-redirector NIC')
    }
    await this.#frames.toGuest(frame)
  }

  close(): Promise<void> {
    this.#closing ??= this.#doClose()
    return this.#closing
  }

  async #doClose(): Promise<void> {
    this.#state = 'exited'
    this.#ackGate?.releaseAll()
    this.#frames?.close()
    // Also after a crash: stop() is idempotent and removes the run dir (sockets, serial log).
    await Promise.all([...this.#retiring])
    await this.#process.stop({ removeRam: this.options.removeRamOnClose ?? false })
    await this.memory.close()
  }

  #alive(): void {
    if (this.#state === 'exited') throw new VmExitedError(`VM ${this.#process.name} has exited`)
  }

  /** A snapshot image: QEMU resets the machine and loads it into this process (no swap). */
  async #loadInPlace(state: Uint8Array): Promise<void> {
    const proc = this.#process
    this.#lastImport = await loadSnapshotState(proc.qmp, state, {
      path: join(proc.paths.runDir, `import-${++this.#transfers}.qcow2`),
      timeoutMs: this.options.transferTimeoutMs,
    })
    // A cached export of this process describes the state before the load.
    this.#exported = undefined
    this.#deviceStateLoaded()
  }

  /** Bookkeeping after this VM took another VM's device state (either form). */
  #deviceStateLoaded(): void {
    // WHY a scan stays current: with x-ignore-shared QEMU loads device state only and never writes
    // the shared RAM file (vmsync-replica.test.ts checks the backup's RAM byte for byte after every
    // sync, and the next sync's dirty set depends on this baseline).
    const before = this.#changes++
    const tracker = this.#tracker?.tracker
    if (tracker instanceof HashScanTracker) tracker.noteWritten(new Uint32Array(0), before, this.#changes)
    // After a sync the guest's TCP state is the primary's at the cut, not what this guest sent:
    // forget every flow; tracking restarts from the next outputs (unknown flows are never held).
    this.#ackGate?.reset()
  }

  async #adopt(proc: QemuProcess): Promise<void> {
    const status = await proc.qmp.queryStatus()
    let frames: FrameChannel | undefined
    if (proc.paths.redirectors) {
      frames = new FrameChannel({ redirectors: proc.paths.redirectors, qmp: proc.qmp })
      await frames.open()
    }
    this.#frames?.close()
    this.#frames = frames
    frames?.on('guest-frame', (f) => {
      // WHY before the emit: see injectFrame (the gate must know a byte before anyone releases it).
      this.#ackGate?.observeOutbound(f)
      this.emit('frame-out', f)
    })
    frames?.on('net-frame', (f) => this.host.emit('net-frame', f))
    this.#process = proc
    this.#state = status.running ? 'running' : 'paused'
    proc.once('exit', (exit) => this.#onExit(proc, exit))
  }

  #onExit(proc: QemuProcess, exit: QemuExit): void {
    if (proc !== this.#process || exit.expected || this.#state === 'exited') return
    this.#state = 'exited'
    this.#ackGate?.releaseAll()
    this.#frames?.close()
    const how = exit.signal ? `killed by ${exit.signal}` : `exited with code ${exit.code}`
    const info: VmExitInfo = {
      code: exit.code,
      signal: exit.signal,
      reason: `QEMU ${proc.name} ${how}; stderr: ${exit.stderrTail.trim().slice(-500)}; serial: ${exit.serialTail.slice(-500)}`,
    }
    this.emit('exit', info)
  }

  // Our own writes are dirty too: hash-scan sees them in the file, soft-dirty does not.
  #withWritten(collected: Uint32Array): Uint32Array {
    const written = this.#writtenSinceReset
    if (written.indexOf(1) < 0) return collected
    const merged = Uint8Array.from(written)
    for (const p of collected) merged[p] = 1
    const out: number[] = []
    for (let p = 0; p < merged.length; p++) if (merged[p]) out.push(p)
    return Uint32Array.from(out)
  }

  async #dirtyTracker(): Promise<DirtyTracker> {
    this.#alive()
    const pid = this.#process.pid
    if (!this.#tracker || (this.#tracker.kind === 'soft-dirty' && this.#trackerPid !== pid)) {
      const source = this.memorySource
      if (source.kind !== 'file') throw new Error('QEMU memory is always a file')
      this.#tracker = await selectDirtyTracker({
        pid,
        source,
        hasher: this.options.hasher,
        isPaused: () => this.#state === 'paused',
        changeStamp: () => this.#changes,
        prefer: this.options.dirtyTracking,
        probe: this.options.softDirtyProbe,
        log: this.options.log,
      })
      this.#trackerPid = pid
    }
    return this.#tracker.tracker
  }
}
