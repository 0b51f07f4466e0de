// A TCP relay on loopback between two replica processes, so a test can partition the network:
// cut a replica off from its peers while it keeps running and its clients stay connected to it.
//
// WHY stall rather than reset: during a real partition TCP retransmits, so neither end sees bytes,
// a FIN or an error until the partition heals or its own timeouts give up. A cut relay is that:
// it stops reading both sockets (their buffers fill, then the writers block), holds back a close,
// and parks new connections unconnected. heal() lets everything that was held flow in order.
import net from 'node:net'

/** Two sockets spliced together; while cut, neither bytes nor a close cross. */
class RelayedConnection {
  private held: (() => void)[] = []

  constructor(
    private readonly a: net.Socket,
    private readonly b: net.Socket,
    private readonly isCut: () => boolean,
  ) {
    this.splice(a, b)
    this.splice(b, a)
    if (isCut()) this.cut()
    else this.heal()
  }

  cut(): void {
    this.a.pause()
    this.b.pause()
  }

  heal(): void {
    for (const [src, dst] of [
      [this.a, this.b],
      [this.b, this.a],
    ] as const) {
      // Back-pressure still applies: a source whose destination is full waits for its drain.
      if (!dst.writableNeedDrain) src.resume()
    }
    const held = this.held
    this.held = []
    for (const f of held) f()
  }

  private splice(src: net.Socket, dst: net.Socket): void {
    src.on('data', (chunk: Buffer) => {
      if (!dst.write(chunk)) {
        src.pause()
        dst.once('drain', () => {
          if (!this.isCut()) src.resume()
        })
      }
    })
    let ended = false
    src.on('end', () => {
      ended = true
    })
    // A FIN is passed on as a FIN (after the bytes before it), anything else as a reset.
    src.on('close', () => this.unlessCut(() => (ended ? dst.end() : dst.destroy())))
  }

  /** Runs `f` now, or at heal() if the relay is cut. */
  private unlessCut(f: () => void): void {
    if (this.isCut()) this.held.push(f)
    else f()
  }
}

export class PeerRelay {
  private readonly server = net.createServer((s) => this.accept(s))
  private readonly connections = new Set<RelayedConnection>()
  private readonly sockets = new Set<net.Socket>()
  /** Connections accepted while cut: connected upstream at heal(). */
  private parked: net.Socket[] = []
  private cutNow = false
  port = 0

  constructor(
    /** The replica that dials through this relay. */
    readonly from: number,
    /** The replica the relay forwards to. */
    readonly to: number,
    private readonly target: { readonly host: string; readonly port: number },
  ) {}

  get targetPort(): number {
    return this.target.port
  }

  /** Listens on `port` (0: any free one). */
  async listen(port = 0): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, '127.0.0.1', () => resolve())
    })
    this.port = (this.server.address() as net.AddressInfo).port
  }

  get isCut(): boolean {
    return this.cutNow
  }

  cut(): void {
    this.cutNow = true
    for (const c of this.connections) c.cut()
  }

  heal(): void {
    this.cutNow = false
    for (const c of this.connections) c.heal()
    const parked = this.parked
    this.parked = []
    for (const s of parked) if (!s.destroyed) this.connect(s)
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private accept(client: net.Socket): void {
    this.track(client)
    if (this.cutNow) {
      client.pause()
      this.parked.push(client)
    } else {
      this.connect(client)
    }
  }

  private connect(client: net.Socket): void {
    client.pause()
    const upstream = net.connect(this.target.port, this.target.host)
    this.track(upstream)
    let connected = false
    // A refused upstream is what the dialer would have seen without the relay.
    upstream.once('close', () => {
      if (!connected) client.destroy()
    })
    client.once('close', () => {
      if (!connected) upstream.destroy()
    })
    upstream.once('connect', () => {
      connected = true
      const c = new RelayedConnection(client, upstream, () => this.cutNow)
      this.connections.add(c)
      // Kept until both ends closed: a close held back by the cut is passed on at heal().
      const forget = () => {
        if (client.destroyed && upstream.destroyed) this.connections.delete(c)
      }
      client.once('close', forget)
      upstream.once('close', forget)
    })
  }

  private track(s: net.Socket): void {
    // Errors end in 'close', which is what the relay acts on.
    s.on('error', () => {})
    this.sockets.add(s)
    s.once('close', () => this.sockets.delete(s))
  }
}
