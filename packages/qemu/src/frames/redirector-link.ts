// One connection to a filter-redirector chardev (QEMU is the unix-socket server, Node the client).
// 'from-qemu' links carry an outdev's frames to Node; 'to-qemu' links feed an indev. The link
// reconnects when the connection drops (optionally running a hook first: an indev redirector stops
// reading after a reconnect and must be recreated over QMP), drops the connection on undecodable
// input, applies backpressure on writes, and counts everything.
import { connect, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { EventEmitter } from 'eventemitter3'
import { encodeFrame, type FrameCodecOptions, FrameDecoder } from './codec.js'
import { FrameChannelClosedError, type FrameDecodeError } from './errors.js'

export type LinkRole = 'from-qemu' | 'to-qemu'

export interface LinkCounters {
  frames: number
  bytes: number
  /** Frames given while disconnected, or lost when the connection dropped mid-write. */
  drops: number
  decodeErrors: number
  reconnects: number
}

export interface RedirectorLinkOptions extends FrameCodecOptions {
  readonly path: string
  readonly role: LinkRole
  /** Runs after every reconnect, before the link counts as up (e.g. recreate an indev redirector). */
  readonly afterReconnect?: () => Promise<void>
  /** Budget for the first connect, while QEMU may still be creating the socket. */
  readonly connectTimeoutMs?: number
  readonly reconnectDelayMs?: number
  /** Bytes buffered in the socket beyond which send() waits for 'drain'. */
  readonly highWaterBytes?: number
}

export interface RedirectorLinkEvents {
  frame: (frame: Buffer) => void
  /** The connection dropped (peer closed, garbage, socket error); a reconnect follows unless closed. */
  down: (error: Error) => void
  up: () => void
}

const RETRYABLE = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN'])

export class RedirectorLink extends EventEmitter<RedirectorLinkEvents> {
  readonly counters: LinkCounters = { frames: 0, bytes: 0, drops: 0, decodeErrors: 0, reconnects: 0 }
  #socket: Socket | undefined
  #closed = false
  #reconnecting = false

  constructor(private readonly options: RedirectorLinkOptions) {
    super()
  }

  get connected(): boolean {
    return this.#socket !== undefined && !this.#reconnecting
  }

  async open(): Promise<void> {
    await this.#connect(this.options.connectTimeoutMs ?? 10_000)
  }

  /** Writes one frame towards QEMU; resolves once the socket accepted it (waits on backpressure). */
  async send(frame: Uint8Array): Promise<void> {
    if (this.options.role !== 'to-qemu') throw new Error(`link ${this.options.path} carries frames from QEMU`)
    const socket = this.#socket
    if (!socket || this.#reconnecting) {
      this.counters.drops++
      throw new FrameChannelClosedError(`redirector socket ${this.options.path} is not connected`)
    }
    const wire = encodeFrame(frame, this.options)
    this.counters.frames++
    this.counters.bytes += frame.byteLength
    const flushed = socket.write(wire)
    if (!flushed && socket.writableLength > (this.options.highWaterBytes ?? 1 << 20)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          socket.off('drain', done)
          socket.off('close', done)
          resolve()
        }
        socket.on('drain', done)
        socket.on('close', done)
      })
    }
  }

  /** Drops the current connection as if the peer had; the link reconnects. */
  dropConnection(): void {
    this.#socket?.destroy()
  }

  close(): void {
    this.#closed = true
    this.#socket?.destroy()
    this.#socket = undefined
  }

  async #connect(budgetMs: number): Promise<void> {
    const deadline = Date.now() + budgetMs
    for (;;) {
      if (this.#closed) throw new FrameChannelClosedError('link closed')
      try {
        const socket = await dial(this.options.path)
        this.#attach(socket)
        return
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? ''
        if (!RETRYABLE.has(code) || Date.now() >= deadline) throw err
        await sleep(20)
      }
    }
  }

  #attach(socket: Socket): void {
    this.#socket = socket
    const decoder = new FrameDecoder(this.options)
    socket.on('data', (chunk: Buffer) => {
      if (this.options.role !== 'from-qemu') return // an indev socket never carries frames to us
      let frames: Buffer[]
      try {
        frames = decoder.push(chunk)
      } catch (err) {
        this.counters.decodeErrors++
        socket.destroy(err as FrameDecodeError)
        return
      }
      for (const f of frames) {
        this.counters.frames++
        this.counters.bytes += f.byteLength
        this.emit('frame', f)
      }
    })
    let failure: Error | undefined
    socket.on('error', (err) => {
      failure = err
    })
    socket.on('close', () => {
      if (this.#socket !== socket) return
      this.#socket = undefined
      if (socket.writableLength > 0) this.counters.drops++
      this.emit('down', failure ?? new FrameChannelClosedError(`QEMU closed ${this.options.path}`))
      if (!this.#closed && !this.#reconnecting) void this.#reconnect()
    })
  }

  async #reconnect(): Promise<void> {
    this.#reconnecting = true
    try {
      await this.#reconnectLoop()
    } finally {
      this.#reconnecting = false
    }
    if (this.#socket && !this.#closed) this.emit('up')
  }

  async #reconnectLoop(): Promise<void> {
    while (!this.#closed) {
      await sleep(this.options.reconnectDelayMs ?? 50)
      try {
        await this.#connect(0)
      } catch (err) {
        if (err instanceof FrameChannelClosedError) return
        continue // QEMU gone or the chardev not listening yet: keep trying until closed
      }
      this.counters.reconnects++
      try {
        await this.options.afterReconnect?.()
      } catch (err) {
        this.emit('down', err as Error)
        this.#socket?.destroy() // its 'close' sees the reconnect in progress and leaves it to us
        continue
      }
      return
    }
  }
}

function dial(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(path)
    socket.once('connect', () => {
      socket.off('error', reject)
      resolve(socket)
    })
    socket.once('error', reject)
  })
}
