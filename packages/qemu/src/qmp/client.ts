import { connect as netConnect, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { EventEmitter } from 'eventemitter3'
import { type DecodeResult, QmpDecoder } from './decoder.js'
import { QmpDisconnectedError, QmpError, QmpProtocolError, QmpTimeoutError } from './errors.js'
import type {
  BlockStats,
  KnownQmpEventName,
  MigrateOptions,
  MigrationCapabilityState,
  MigrationInfo,
  ObjectAddArgs,
  QmpEvent,
  StatusInfo,
} from './types.js'
import type { QmpMessage } from './wire.js'

export interface QmpConnectOptions {
  /** Budget for connect + greeting + `qmp_capabilities` (default 10 s). */
  readonly connectTimeoutMs?: number
  /**
   * Keep retrying while the socket does not exist / refuses (QEMU still starting) until the
   * connect budget is spent (default true).
   */
  readonly retry?: boolean
  /** Default per-command timeout (default 30 s). */
  readonly commandTimeoutMs?: number
  /** Gives up connecting (e.g. the QEMU process died meanwhile). */
  readonly signal?: AbortSignal
}

export interface ExecuteOptions {
  /** Overrides the client's default command timeout. */
  readonly timeoutMs?: number
}

/** Events of a QmpClient. */
export interface QmpClientEvents {
  /** An asynchronous QMP event from QEMU. */
  event: (event: QmpEvent) => void
  /** The connection is gone (once). Pending commands were rejected with the same error. */
  disconnected: (error: QmpDisconnectedError) => void
  /** The peer sent something that is not QMP; the line was skipped. */
  protocolError: (error: QmpProtocolError) => void
}

interface Pending {
  readonly id: string
  readonly command: string
  readonly resolve: (value: unknown) => void
  readonly reject: (error: Error) => void
  readonly timer: NodeJS.Timeout
}

const RETRYABLE = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN'])

/**
 * A QMP client on a unix socket. Commands carry ids and may be issued concurrently (QEMU answers
 * in order; ids make matching explicit). Each command has a timeout. QEMU errors become QmpError,
 * malformed input QmpProtocolError (skipped, reported as `protocolError`), and the loss of the
 * connection rejects every pending command with QmpDisconnectedError and emits `disconnected`.
 *
 * QEMU serves one QMP client per socket at a time: a second client gets no greeting, so
 * `connect` then fails with QmpTimeoutError('greeting') instead of hanging.
 */
export class QmpClient extends EventEmitter<QmpClientEvents> {
  /** Capabilities/version from QEMU's greeting. */
  readonly greeting: Record<string, unknown>
  private readonly pending = new Map<string, Pending>()
  private nextId = 1
  private closedError: QmpDisconnectedError | undefined
  private closingByClient = false

  private constructor(
    private readonly socket: Socket,
    private readonly decoder: QmpDecoder,
    greeting: Record<string, unknown>,
    private readonly commandTimeoutMs: number,
    readonly socketPath: string,
  ) {
    super()
    this.greeting = greeting
  }

  /** Connects, reads the greeting and enters command mode. */
  static async connect(socketPath: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const budget = options.connectTimeoutMs ?? 10_000
    const deadline = Date.now() + budget
    const signal = options.signal
    const socket = await openSocket(socketPath, deadline, options.retry ?? true, budget, signal)
    const decoder = new QmpDecoder()
    let client: QmpClient | undefined
    const onAbort = () => socket.destroy(new Error('connect aborted'))
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      const { greeting, rest } = await readGreeting(socket, decoder, deadline, budget)
      client = new QmpClient(socket, decoder, greeting, options.commandTimeoutMs ?? 30_000, socketPath)
      client.attach()
      for (const r of rest) client.dispatch(r)
      await client.execute('qmp_capabilities', undefined, { timeoutMs: Math.max(1, deadline - Date.now()) })
      if (signal?.aborted) throw new Error('connect aborted')
      return client
    } catch (e) {
      client?.close()
      socket.destroy()
      throw e
    } finally {
      signal?.removeEventListener('abort', onAbort)
    }
  }

  /** True until the connection is lost or closed. */
  get connected(): boolean {
    return this.closedError === undefined
  }

  /**
   * Sends any QMP command. Resolves with its `return`; rejects with QmpError (QEMU refused),
   * QmpTimeoutError, or QmpDisconnectedError.
   */
  execute<T = unknown>(command: string, args?: object, options: ExecuteOptions = {}): Promise<T> {
    if (this.closedError) {
      return Promise.reject(
        new QmpDisconnectedError(this.closedError.reason, this.closedError.byClient, command),
      )
    }
    const id = `plover-${this.nextId++}`
    const timeoutMs = options.timeoutMs ?? this.commandTimeoutMs
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new QmpTimeoutError(command, timeoutMs))
      }, timeoutMs)
      this.pending.set(id, { id, command, resolve: resolve as (v: unknown) => void, reject, timer })
      const msg = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id }
      this.socket.write(`${JSON.stringify(msg)}\n`)
    })
  }

  stop(): Promise<void> {
    return this.execute<Record<string, never>>('stop').then(() => undefined)
  }
  cont(): Promise<void> {
    return this.execute<Record<string, never>>('cont').then(() => undefined)
  }
  queryStatus(): Promise<StatusInfo> {
    return this.execute<StatusInfo>('query-status')
  }
  migrateSetCapabilities(capabilities: readonly MigrationCapabilityState[]): Promise<void> {
    return this.execute('migrate-set-capabilities', { capabilities }).then(() => undefined)
  }
  /** Starts an outgoing migration (returns at once; poll `queryMigrate` or await MIGRATION events). */
  migrate(uri: string, options: MigrateOptions = {}): Promise<void> {
    return this.execute('migrate', { uri, ...options }).then(() => undefined)
  }
  /** Starts listening for an incoming migration on a QEMU started with `-incoming defer`. */
  migrateIncoming(uri: string): Promise<void> {
    return this.execute('migrate-incoming', { uri }).then(() => undefined)
  }
  queryMigrate(): Promise<MigrationInfo> {
    return this.execute<MigrationInfo>('query-migrate')
  }
  objectAdd(args: ObjectAddArgs): Promise<void> {
    return this.execute('object-add', args).then(() => undefined)
  }
  objectDel(id: string): Promise<void> {
    return this.execute('object-del', { id }).then(() => undefined)
  }
  queryBlockstats(): Promise<BlockStats[]> {
    return this.execute<BlockStats[]>('query-blockstats')
  }
  /** Asks QEMU to exit. Resolves when QEMU acknowledged (it then closes the socket). */
  quit(options: ExecuteOptions = {}): Promise<void> {
    return this.execute('quit', undefined, options).then(() => undefined)
  }

  /** Subscribes to one event name with typed data; returns the unsubscribe function. */
  onEvent<N extends KnownQmpEventName | (string & {})>(
    name: N,
    handler: (event: QmpEvent<N>) => void,
  ): () => void {
    const listener = (ev: QmpEvent) => {
      if (ev.event === name) handler(ev as unknown as QmpEvent<N>)
    }
    this.on('event', listener)
    return () => this.off('event', listener)
  }

  /**
   * Resolves with the next event `name` that satisfies `predicate`; rejects on timeout or
   * disconnect. Subscribe BEFORE triggering the action that causes the event.
   */
  waitForEvent<N extends KnownQmpEventName | (string & {})>(
    name: N,
    options: { timeoutMs?: number; predicate?: (event: QmpEvent<N>) => boolean } = {},
  ): Promise<QmpEvent<N>> {
    const timeoutMs = options.timeoutMs ?? this.commandTimeoutMs
    return new Promise((resolve, reject) => {
      if (this.closedError) return reject(this.closedError)
      const cleanup = () => {
        clearTimeout(timer)
        off()
        this.off('disconnected', onGone)
      }
      const off = this.onEvent(name, (ev) => {
        if (options.predicate && !options.predicate(ev)) return
        cleanup()
        resolve(ev)
      })
      const onGone = (err: QmpDisconnectedError) => {
        cleanup()
        reject(err)
      }
      this.once('disconnected', onGone)
      const timer = setTimeout(() => {
        cleanup()
        reject(new QmpTimeoutError(`event ${name}`, timeoutMs))
      }, timeoutMs)
    })
  }

  /** Closes the connection; pending commands are rejected with QmpDisconnectedError(byClient). */
  close(): void {
    if (this.closedError) return
    this.closingByClient = true
    this.socket.destroy()
    this.handleGone('closed by client')
  }

  /**
   * @internal The owner knows the peer is gone (e.g. the QEMU process exited) before the socket
   * reported it: fail pending commands now, as a peer-side loss.
   */
  terminate(reason: string): void {
    this.handleGone(reason)
  }

  private attach(): void {
    this.socket.on('data', (chunk: Buffer) => {
      for (const r of this.decoder.push(chunk)) this.dispatch(r)
    })
    this.socket.on('error', (err) => this.handleGone(err.message))
    this.socket.on('close', () => {
      const trailing = this.decoder.end()
      if (trailing) this.emit('protocolError', trailing)
      this.handleGone('closed by peer')
    })
  }

  private dispatch(r: QmpMessage | QmpProtocolError): void {
    if (r instanceof QmpProtocolError) {
      this.emit('protocolError', r)
      return
    }
    if (r.kind === 'event') {
      this.emit('event', { event: r.event, data: r.data, timestamp: r.timestamp } as QmpEvent)
      return
    }
    if (r.kind === 'greeting') {
      this.emit('protocolError', new QmpProtocolError('unexpected second greeting', ''))
      return
    }
    // WHY the fallback to the oldest: QEMU omits the id when it could not parse our request, and
    // it answers strictly in order.
    const p = r.id !== undefined ? this.pending.get(String(r.id)) : this.pending.values().next().value
    if (!p) {
      this.emit('protocolError', new QmpProtocolError(`reply for unknown command id ${String(r.id)}`, ''))
      return
    }
    this.pending.delete(p.id)
    clearTimeout(p.timer)
    if (r.kind === 'return') p.resolve(r.return)
    else p.reject(new QmpError(r.error.class, r.error.desc, p.command))
  }

  private handleGone(reason: string): void {
    if (this.closedError) return
    const err = new QmpDisconnectedError(reason, this.closingByClient)
    this.closedError = err
    for (const p of this.pending.values()) {
      clearTimeout(p.timer)
      p.reject(new QmpDisconnectedError(reason, this.closingByClient, p.command))
    }
    this.pending.clear()
    this.socket.destroy()
    this.emit('disconnected', err)
  }
}

async function openSocket(
  path: string,
  deadline: number,
  retry: boolean,
  budget: number,
  signal: AbortSignal | undefined,
): Promise<Socket> {
  for (;;) {
    if (signal?.aborted) throw new Error('connect aborted')
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const s = netConnect(path)
        s.once('connect', () => {
          s.off('error', reject)
          resolve(s)
        })
        s.once('error', reject)
      })
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? ''
      if (!retry || !RETRYABLE.has(code)) throw e
      if (Date.now() >= deadline) throw new QmpTimeoutError(`connect ${path} (${code})`, budget)
      await sleep(25, undefined, signal ? { signal } : {}).catch(() => {})
    }
  }
}

function readGreeting(
  socket: Socket,
  decoder: QmpDecoder,
  deadline: number,
  budget: number,
): Promise<{ greeting: Record<string, unknown>; rest: DecodeResult[] }> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | undefined, greeting?: Record<string, unknown>, rest: DecodeResult[] = []) => {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('close', onClose)
      socket.off('error', onError)
      if (err) reject(err)
      else resolve({ greeting: greeting!, rest })
    }
    const onData = (chunk: Buffer) => {
      const results = decoder.push(chunk)
      const first = results[0]
      if (!first) return
      if (first instanceof QmpProtocolError) return done(first)
      if (first.kind === 'greeting') return done(undefined, first.QMP, results.slice(1))
      return done(new QmpProtocolError(`expected greeting, got ${first.kind}`, ''))
    }
    const onClose = () => done(new QmpDisconnectedError('closed before the greeting', false, 'greeting'))
    const onError = (e: Error) => done(new QmpDisconnectedError(e.message, false, 'greeting'))
    const timer = setTimeout(
      () => done(new QmpTimeoutError('greeting (is another client connected?)', budget)),
      Math.max(1, deadline - Date.now()),
    )
    socket.on('data', onData)
    socket.on('close', onClose)
    socket.on('error', onError)
  })
}
