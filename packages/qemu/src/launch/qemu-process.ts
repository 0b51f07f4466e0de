import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { EventEmitter } from 'eventemitter3'
import { QmpClient } from '../qmp/client.js'
import { buildQemuCommandLine, type VmPaths } from './command-line.js'
import { guardChild } from './orphan-guard.js'
import { SerialLog } from './serial-log.js'
import type { VmConfig } from './vm-config.js'

/** How a QEMU process ended. */
export interface QemuExit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  /** True when `stop()` asked for it; false for crashes, kills, guest poweroff. */
  readonly expected: boolean
  /** Last part of the serial console (what the guest printed before the end). */
  readonly serialTail: string
  /** Last part of QEMU's stderr (QEMU's own error messages). */
  readonly stderrTail: string
}

export interface QemuProcessEvents {
  /** The process ended (emitted once, expected or not). */
  exit: (exit: QemuExit) => void
}

export interface LaunchOptions {
  /** Budget for QEMU to create its QMP socket and complete the handshake (default 30 s). */
  readonly qmpTimeoutMs?: number
  /** Default QMP command timeout (default 30 s). */
  readonly commandTimeoutMs?: number
}

export interface StopOptions {
  /** Time QEMU gets after `quit` before SIGTERM, and after SIGTERM before SIGKILL (default 3 s each). */
  readonly graceMs?: number
  /** Also delete the RAM file (default false: a standby or the runtime may still need it). */
  readonly removeRam?: boolean
  /** Keep the run dir (serial log) for debugging (default false). */
  readonly keepRunDir?: boolean
}

/** QEMU exited before its QMP socket was usable. */
export class QemuLaunchError extends Error {
  override readonly name = 'QemuLaunchError'
  constructor(
    message: string,
    readonly exit: QemuExit | undefined,
    readonly commandLine: readonly string[],
  ) {
    super(`${message}${exit ? `\nstderr: ${exit.stderrTail}\nserial: ${exit.serialTail.slice(-800)}` : ''}`)
  }
}

/** The process died while someone waited for it (e.g. in waitForSerial). */
export class QemuExitedError extends Error {
  override readonly name = 'QemuExitedError'
  constructor(readonly exit: QemuExit) {
    const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`
    super(`QEMU exited (${how}); stderr: ${exit.stderrTail.trim()}\nserial tail:\n${exit.serialTail}`)
  }
}

const STDERR_KEEP = 8192
const SETPRIV = '/usr/bin/setpriv'

/**
 * A running QEMU replica: its QMP client (the only one: QEMU serves one client per socket),
 * serial console, paths, and lifecycle. Create with `launch()`.
 */
export class QemuProcess extends EventEmitter<QemuProcessEvents> {
  /** Resolves (never rejects) when the process has exited. */
  readonly exited: Promise<QemuExit>
  private exitInfo: QemuExit | undefined
  private stopRequested = false
  private stderr = ''
  private stopping: Promise<QemuExit> | undefined
  private readonly serial: SerialLog
  qmp!: QmpClient

  /** @internal use launch() */
  constructor(
    readonly config: VmConfig,
    readonly paths: VmPaths,
    readonly commandLine: readonly string[],
    private readonly child: ChildProcess,
  ) {
    super()
    this.serial = new SerialLog(paths.serialLog)
    child.stderr?.on('data', (c: Buffer) => {
      this.stderr = (this.stderr + c.toString('utf8')).slice(-STDERR_KEEP)
    })
    child.stdout?.resume()
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        // WHY defer a tick: let the stderr pipe drain so the tail includes QEMU's last message.
        setImmediate(() => {
          const info: QemuExit = {
            code,
            signal,
            expected: this.stopRequested,
            serialTail: this.serial.tail(4000),
            stderrTail: this.stderr,
          }
          this.exitInfo = info
          this.qmp?.terminate(`QEMU exited (${signal ?? code})`)
          this.emit('exit', info)
          resolve(info)
        })
      })
    })
  }

  get name(): string {
    return this.config.name
  }
  get pid(): number {
    return this.child.pid!
  }
  /** True until the process exits. */
  get running(): boolean {
    return this.exitInfo === undefined
  }
  get serialLogPath(): string {
    return this.paths.serialLog
  }
  /** The exit, once it happened. */
  get exitStatus(): QemuExit | undefined {
    return this.exitInfo
  }

  /** Waits for `re` on the serial console; rejects with SerialTimeoutError or QemuExitedError. */
  waitForSerial(re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    const abort = this.exited.then((e) => new QemuExitedError(e))
    return this.serial.waitFor(re, timeoutMs, abort)
  }

  /** The serial console so far (last `chars` characters). */
  serialTail(chars = 4000): string {
    return this.serial.tail(chars)
  }

  /** Sends a signal to QEMU (tests use SIGKILL to simulate a crash). */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.running) this.child.kill(signal)
  }

  /**
   * Stops QEMU: `quit` over QMP, then SIGTERM, then SIGKILL, each after `graceMs`. Then removes
   * the run dir (sockets, serial log) and optionally the RAM file. Idempotent: a later call waits
   * for the first one's shutdown, and still deletes the RAM file when it asks for `removeRam`.
   */
  stop(options: StopOptions = {}): Promise<QemuExit> {
    this.stopping ??= this.doStop(options)
    if (!options.removeRam) return this.stopping
    return this.stopping.then((exit) => {
      rmSync(this.paths.ramPath, { force: true })
      return exit
    })
  }

  private async doStop(options: StopOptions): Promise<QemuExit> {
    const grace = options.graceMs ?? 3000
    this.stopRequested = this.running
    if (this.running && this.qmp?.connected) {
      await this.qmp.quit({ timeoutMs: grace }).catch(() => {})
    }
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      if (await this.exitedWithin(grace)) break
      this.child.kill(signal)
    }
    const exit = await this.exited
    this.qmp?.close()
    if (!options.keepRunDir) rmSync(this.paths.runDir, { recursive: true, force: true })
    if (options.removeRam) rmSync(this.paths.ramPath, { force: true })
    return exit
  }

  /** @internal true when the process has exited or exits within `ms`. */
  async exitedWithin(ms: number): Promise<boolean> {
    if (!this.running) return true
    const ac = new AbortController()
    const r = await Promise.race([
      this.exited.then(() => true),
      sleep(ms, false, { signal: ac.signal }).catch(() => false),
    ])
    ac.abort()
    return r
  }
}

function removeStale(paths: VmPaths): void {
  const sockets = [paths.qmpSocket, ...Object.values(paths.redirectors ?? {}).map((s) => s.socketPath)]
  for (const p of sockets) {
    try {
      unlinkSync(p)
    } catch {}
  }
}

/**
 * Starts QEMU for `config`, waits until QMP is connected and returns the process handle.
 * Stale sockets from a crashed earlier run are removed first; the serial log starts empty.
 * If QEMU exits early (bad arguments, tap busy, …) this rejects with QemuLaunchError carrying
 * QEMU's stderr.
 */
export async function launch(config: VmConfig, options: LaunchOptions = {}): Promise<QemuProcess> {
  const { binary, args, paths } = buildQemuCommandLine(config)
  mkdirSync(paths.runDir, { recursive: true })
  removeStale(paths)
  writeFileSync(paths.serialLog, '')
  // WHY setpriv: the kernel SIGKILLs QEMU if Node dies in any way (even SIGKILL): no orphans.
  const [cmd, argv] = existsSync(SETPRIV)
    ? [SETPRIV, ['--pdeathsig', 'KILL', '--', binary, ...args]]
    : [binary, args]
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
  guardChild(child)
  const spawned = await new Promise<Error | undefined>((resolve) => {
    child.once('spawn', () => resolve(undefined))
    child.once('error', (e) => resolve(e))
  })
  const commandLine = [binary, ...args]
  if (spawned) throw new QemuLaunchError(`cannot start ${binary}: ${spawned.message}`, undefined, commandLine)
  const proc = new QemuProcess(config, paths, commandLine, child)
  const timeoutMs = options.qmpTimeoutMs ?? 30_000
  const ac = new AbortController()
  try {
    const qmp = await Promise.race([
      QmpClient.connect(paths.qmpSocket, {
        connectTimeoutMs: timeoutMs,
        signal: ac.signal,
        ...(options.commandTimeoutMs ? { commandTimeoutMs: options.commandTimeoutMs } : {}),
      }),
      proc.exited.then((exit) => {
        throw new QemuLaunchError(`QEMU ${config.name} exited during startup`, exit, commandLine)
      }),
    ])
    proc.qmp = qmp
    return proc
  } catch (e) {
    // WHY wait a moment: QEMU creates its QMP socket before it opens the NIC, so a bad tap shows up
    // first as a reset QMP connection; the exit (with stderr) is the real cause to report.
    await proc.exitedWithin(1000)
    const died = proc.exitStatus
    await proc.stop({ graceMs: 500 })
    if (e instanceof QemuLaunchError) throw e
    if (died) throw new QemuLaunchError(`QEMU ${config.name} exited during startup`, died, commandLine)
    throw new QemuLaunchError(
      `QEMU ${config.name}: QMP not ready: ${(e as Error).message}`,
      proc.exitStatus,
      commandLine,
    )
  } finally {
    ac.abort()
  }
}
