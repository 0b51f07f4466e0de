// Keeps the next standby QEMU spawned before it is needed: a standby accepts exactly one incoming
// migration, and starting one costs ~200–250 ms to QMP-ready, which must not land in a sync's pause.
import { join } from 'node:path'
import { EventEmitter } from 'eventemitter3'
import { type LaunchOptions, launch, type QemuProcess } from '../launch/qemu-process.js'
import { standbyConfig } from '../launch/standby.js'
import type { VmConfig } from '../launch/vm-config.js'
import { armIncoming } from './device-state.js'

export interface StandbyPoolEvents {
  /** A standby is ready (QMP connected); `spawnMs` is how long it took. */
  spawned: (standby: QemuProcess, spawnMs: number) => void
  /** Spawning failed; the pool retries on the next take(). */
  error: (error: Error) => void
}

export interface StandbyPoolOptions {
  /** Starts one standby. `seq` counts from 1 and makes names unique. */
  readonly spawn: (seq: number) => Promise<QemuProcess>
  /**
   * Standbys kept ready (default 1). WHY more than one: a standby takes ~50–250 ms to reach QMP
   * on a loaded host, and syncs may come faster than that; take() then waits inside a sync.
   */
  readonly size?: number
  /**
   * Arm every standby for importDeviceState as soon as it is up (armIncoming on
   * `incomingSocketPath`; see isArmed). Such a standby only takes an import, not
   * migrateToStandby. Default false.
   */
  readonly armIncoming?: boolean
}

/** Where an armed standby listens for its incoming migration. */
export function incomingSocketPath(standby: QemuProcess): string {
  return join(standby.paths.runDir, 'incoming.sock')
}

export class StandbyPool extends EventEmitter<StandbyPoolEvents> {
  readonly #ready: Array<Promise<QemuProcess>> = []
  #seq = 0
  #closed = false
  #taken = 0
  readonly #armed = new WeakSet<QemuProcess>()

  constructor(private readonly options: StandbyPoolOptions) {
    super()
  }

  /** Starts filling the pool (take() also does). */
  fill(): void {
    while (!this.#closed && this.#ready.length < (this.options.size ?? 1)) this.#ready.push(this.#spawnOne())
  }

  /** A ready standby (waits if it is still starting); a replacement starts right away. */
  async take(): Promise<QemuProcess> {
    if (this.#closed) throw new Error('standby pool is closed')
    this.fill()
    for (let attempt = 0; ; attempt++) {
      const next = this.#ready.shift()!
      this.fill()
      try {
        const standby = await next
        if (!standby.running) {
          await standby.stop() // removes its run dir
          throw new Error(`standby ${standby.name} exited before use`)
        }
        this.#taken++
        return standby
      } catch (err) {
        if (attempt >= 1 || this.#closed) throw err
      }
    }
  }

  get taken(): number {
    return this.#taken
  }

  /** This pool armed `standby`: it listens on incomingSocketPath(standby) already. */
  isArmed(standby: QemuProcess): boolean {
    return this.#armed.has(standby)
  }

  /** Stops every standby not taken. */
  async close(): Promise<void> {
    this.#closed = true
    const pending = this.#ready.splice(0)
    await Promise.all(
      pending.map((p) =>
        p.then(
          (s) => s.stop(),
          () => undefined,
        ),
      ),
    )
  }

  #spawnOne(): Promise<QemuProcess> {
    const started = performance.now()
    const p = this.options.spawn(++this.#seq).then(async (standby) => {
      if (this.#closed) {
        await standby.stop()
        throw new Error('standby pool closed while spawning')
      }
      if (this.options.armIncoming) {
        try {
          await armIncoming(standby.qmp, incomingSocketPath(standby))
        } catch (err) {
          await standby.stop()
          throw new Error(`arming standby ${standby.name} failed: ${(err as Error).message}`)
        }
        this.#armed.add(standby)
      }
      this.emit('spawned', standby, performance.now() - started)
      return standby
    })
    p.catch((err: Error) => this.emit('error', err))
    return p
  }
}

export interface StandbyFactoryOptions {
  /** The config the standbys must match (device set): the primary's, or this replica's own VM. */
  readonly base: VmConfig
  /** The RAM file standbys map: the backup's own RAM file. */
  readonly ramPath: string
  /** Standby names are `${namePrefix}-s${seq}`. */
  readonly namePrefix: string
  /**
   * Taps to cycle through (a tap is held by one QEMU at a time, and the standby starts while the
   * current VM still holds its tap). Needed only for tap NICs.
   */
  readonly tapIfnames?: readonly string[]
  readonly launchOptions?: LaunchOptions
}

/** A spawn function for StandbyPool built from the launcher's standbyConfig. */
export function standbyLauncher(options: StandbyFactoryOptions): (seq: number) => Promise<QemuProcess> {
  return (seq) => {
    const taps = options.tapIfnames
    const config = standbyConfig(options.base, {
      name: `${options.namePrefix}-s${seq}`,
      ramPath: options.ramPath,
      ...(taps && taps.length > 0 ? { tapIfname: taps[seq % taps.length] } : {}),
    })
    return launch(config, options.launchOptions)
  }
}
