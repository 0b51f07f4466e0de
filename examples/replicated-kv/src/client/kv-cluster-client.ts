// A KV client of the replicated service: one TCP connection to whichever replica leads,
// requests pipelined on it and matched to answers by request id. A NotLeader answer, a refused
// or broken connection, or a timeout rejects the affected requests with RetryableError and
// moves to the hinted leader (or the next endpoint; a timeout abandons the connection and every
// request on it); `call` retries until its deadline.
// The client id stays the same across reconnects: it is how the primary routes answers.
import net from 'node:net'
import { decodeKvResponse, encodeKvRequest, type KvOp, type KvResponse } from '@plover/vmsync'
import { ClientMsg, ClientMsgDecoder, encodeClientMsg, type NotLeaderInfo } from './wire.js'

export class RetryableError extends Error {
  override name = 'RetryableError'
}

export interface KvClusterClientOptions {
  /** "host:port" of every replica's client port. */
  readonly endpoints: readonly string[]
  readonly clientId: number
  /** Per-attempt timeout (default 3000 ms). */
  readonly requestTimeoutMs?: number
}

interface Pending {
  resolve(r: KvResponse): void
  reject(e: Error): void
  timer: NodeJS.Timeout
}

export class KvClusterClient {
  /** Connections opened after the first one (failovers, redirects). */
  reconnects = 0
  /** The endpoint currently connected to (or being tried). */
  endpoint: string
  private socket: net.Socket | undefined
  private connecting: Promise<net.Socket> | undefined
  private readonly pending = new Map<number, Pending>()
  private nextRequest = 1
  private next = 0
  private connections = 0
  private closed = false

  constructor(private readonly o: KvClusterClientOptions) {
    this.endpoint = o.endpoints[0]
  }

  /** One attempt. Rejects with RetryableError when it may be retried elsewhere. */
  async request(op: KvOp, key: string, value?: string): Promise<KvResponse> {
    const socket = await this.connect()
    const requestId = this.nextRequest++
    const frame = encodeKvRequest({ op, clientId: this.o.clientId, requestId, key, value })
    return new Promise<KvResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId)
        reject(new RetryableError(`request timed out on ${this.endpoint}`))
        // WHY leave: a replica that stopped answering (hung, or cut off from the others) keeps
        // its TCP connection open; staying would retry against it until it came back, while the
        // others may have elected a new leader. A live leader is found again by redirects.
        if (this.socket === socket) {
          const from = this.endpoint
          this.rotate()
          this.drop(new RetryableError(`connection to ${from} abandoned after a timeout`))
        }
      }, this.o.requestTimeoutMs ?? 3000)
      this.pending.set(requestId, { resolve, reject, timer })
      socket.write(encodeClientMsg(ClientMsg.Request, frame))
    })
  }

  /** Retries `request` on RetryableError until `deadline` (epoch ms). */
  async call(op: KvOp, key: string, value: string | undefined, deadline: number): Promise<KvResponse> {
    for (;;) {
      try {
        return await this.request(op, key, value)
      } catch (err) {
        if (!(err instanceof RetryableError) || Date.now() > deadline || this.closed) throw err
        await new Promise((r) => setTimeout(r, 25))
      }
    }
  }

  close(): void {
    this.closed = true
    this.drop(new Error('client closed'))
  }

  private connect(): Promise<net.Socket> {
    if (this.closed) return Promise.reject(new Error('client closed'))
    if (this.socket) return Promise.resolve(this.socket)
    this.connecting ??= new Promise<net.Socket>((resolve, reject) => {
      const [host, port] = splitHostPort(this.endpoint)
      const s = net.connect({ host, port })
      s.setNoDelay(true)
      const decoder = new ClientMsgDecoder()
      let opened = false
      s.once('connect', () => {
        opened = true
        if (this.connections++ > 0) this.reconnects++
        this.socket = s
        this.connecting = undefined
        resolve(s)
      })
      s.on('error', () => {})
      s.on('close', () => {
        if (!opened) {
          this.connecting = undefined
          this.rotate()
          reject(new RetryableError(`cannot connect to ${host}:${port}`))
          return
        }
        if (this.socket === s) {
          this.socket = undefined
          this.drop(new RetryableError(`connection to ${host}:${port} closed`))
        }
      })
      s.on('data', (chunk: Buffer) => {
        let msgs: ReturnType<ClientMsgDecoder['push']>
        try {
          msgs = decoder.push(chunk)
        } catch {
          s.destroy()
          return
        }
        for (const m of msgs) {
          if (m.type === ClientMsg.Response) this.onResponse(m.body)
          else if (m.type === ClientMsg.NotLeader) {
            const hint = JSON.parse(m.body.toString()) as NotLeaderInfo
            const from = this.endpoint
            if (hint.client && hint.client !== this.endpoint) this.endpoint = hint.client
            else this.rotate()
            // Every request on this connection gets the same answer: go elsewhere.
            if (this.socket === s) this.drop(new RetryableError(`${from} is not the leader`))
            else s.destroy()
            return
          }
        }
      })
    })
    return this.connecting
  }

  private onResponse(frame: Uint8Array): void {
    let r: KvResponse
    try {
      r = decodeKvResponse(frame)
    } catch {
      return
    }
    const p = this.pending.get(r.requestId)
    if (!p) return
    this.pending.delete(r.requestId)
    clearTimeout(p.timer)
    p.resolve(r)
  }

  private rotate(): void {
    this.next = (this.next + 1) % this.o.endpoints.length
    this.endpoint = this.o.endpoints[this.next]
  }

  private drop(err: Error): void {
    this.socket?.destroy()
    this.socket = undefined
    for (const p of this.pending.values()) {
      clearTimeout(p.timer)
      p.reject(err)
    }
    this.pending.clear()
  }
}

export function splitHostPort(s: string): [string, number] {
  const i = s.lastIndexOf(':')
  return [s.slice(0, i), Number(s.slice(i + 1))]
}
