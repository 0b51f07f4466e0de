// The client-facing port of a VM replica. Only the leader (= primary) serves: each request's
// frame goes to the input coordinator (log first, then both VMs); the VM's answer is held by the
// output guard and, once released, written to the connection of the client id it names.
// A non-leader answers every request with NotLeader (and a hint where the leader's port is).
// Losing leadership closes every connection: held answers of a deposed primary are dropped,
// never sent, and clients reconnect to the new primary.
import net from 'node:net'
import { decodeKvRequest, decodeKvResponse } from '@plover/vmsync'
import {
  ClientMsg,
  ClientMsgDecoder,
  encodeClientMsg,
  encodeNotLeader,
  type NotLeaderInfo,
} from '../client/wire.js'
import type { Logger } from '../runtime/logger.js'

export interface ClientServerOptions {
  readonly host: string
  readonly port: number
  readonly log: Logger
  /** True only while this replica is the consensus leader and its VM is the primary. */
  readonly serving: () => boolean
  readonly leaderHint: () => NotLeaderInfo
  /** Hands a request frame to the input coordinator. */
  readonly submit: (frame: Uint8Array) => void
}

export interface ClientServerStats {
  connections: number
  requests: number
  responses: number
  redirects: number
  /** Released answers whose client had no open connection (it will retry). */
  orphaned: number
}

export class ClientServer {
  readonly stats: ClientServerStats = { connections: 0, requests: 0, responses: 0, redirects: 0, orphaned: 0 }
  private readonly server: net.Server
  private readonly sockets = new Set<net.Socket>()
  /** Client id -> the connection its latest request came on. */
  private readonly byClient = new Map<number, net.Socket>()

  constructor(private readonly o: ClientServerOptions) {
    this.server = net.createServer((s) => this.accept(s))
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(this.o.port, this.o.host, () => {
        this.server.off('error', reject)
        resolve()
      })
    })
  }

  /** A frame released by the output guard: route it to its client. */
  deliver(frame: Uint8Array): void {
    let clientId: number
    try {
      clientId = decodeKvResponse(frame).clientId
    } catch {
      return
    }
    const s = this.byClient.get(clientId)
    if (!s || s.destroyed) {
      this.stats.orphaned++
      return
    }
    this.stats.responses++
    s.write(encodeClientMsg(ClientMsg.Response, frame))
  }

  /** Not the primary any more: close every client connection. */
  dropAll(reason: string): void {
    if (this.sockets.size > 0)
      this.o.log.info('closing client connections', { reason, count: this.sockets.size })
    for (const s of this.sockets) s.destroy()
    this.sockets.clear()
    this.byClient.clear()
  }

  async close(): Promise<void> {
    this.dropAll('shutting down')
    await new Promise<void>((r) => this.server.close(() => r()))
  }

  private accept(s: net.Socket): void {
    this.stats.connections++
    this.sockets.add(s)
    s.setNoDelay(true)
    const decoder = new ClientMsgDecoder()
    s.on('error', () => {})
    s.on('close', () => {
      this.sockets.delete(s)
      for (const [id, sock] of this.byClient) if (sock === s) this.byClient.delete(id)
    })
    s.on('data', (chunk: Buffer) => {
      let msgs: ReturnType<ClientMsgDecoder['push']>
      try {
        msgs = decoder.push(chunk)
      } catch (err) {
        this.o.log.warn('bad client stream', { error: err as Error, remote: s.remoteAddress })
        s.destroy()
        return
      }
      for (const m of msgs) {
        if (m.type !== ClientMsg.Request) continue
        if (!this.o.serving()) {
          this.stats.redirects++
          s.write(encodeNotLeader(this.o.leaderHint()))
          continue
        }
        const d = decodeKvRequest(m.body)
        if (d.kind === 'foreign') continue
        const clientId = d.kind === 'request' ? d.request.clientId : d.clientId
        this.byClient.set(clientId, s)
        this.stats.requests++
        this.o.submit(m.body)
      }
    })
  }
}
