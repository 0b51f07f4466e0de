// The four filter-redirector sockets of one VM as one object: frames the guest sends and frames
// arriving from the network come out as events; frames can be injected toward the guest or
// released to the network. Indev links recreate their redirector over QMP after a reconnect.
import { EventEmitter } from 'eventemitter3'
import type { RedirectorSpec } from '../launch/redirectors.js'
import type { RedirectorName } from '../launch/vm-config.js'
import type { QmpClient } from '../qmp/client.js'
import { recreateRedirector } from './recreate-redirector.js'
import { type LinkCounters, RedirectorLink } from './redirector-link.js'

export interface FrameChannelEvents {
  /** A frame the guest sent (redirector outOut). */
  'guest-frame': (frame: Buffer) => void
  /** A frame from the network on its way to the guest, diverted to Node (redirector inOut). */
  'net-frame': (frame: Buffer) => void
  /** A link went down (QEMU closed it, garbage on it, recreate failed); it reconnects by itself. */
  'link-down': (name: RedirectorName, error: Error) => void
  'link-up': (name: RedirectorName) => void
}

export interface FrameChannelOptions {
  /** The VM's redirectors (QemuProcess.paths.redirectors). */
  readonly redirectors: Readonly<Record<RedirectorName, RedirectorSpec>>
  /** Used to recreate indev redirectors after a reconnect; without it they are only reconnected. */
  readonly qmp?: Pick<QmpClient, 'objectDel' | 'objectAdd'>
  readonly netdevId?: string
  /** vnet-header length to announce on injected frames in vnet_hdr mode. */
  readonly vnetHdrLen?: number
  readonly connectTimeoutMs?: number
  readonly reconnectDelayMs?: number
  readonly highWaterBytes?: number
}

const LAUNCH_ORDER: readonly RedirectorName[] = ['inOut', 'inIn', 'outIn', 'outOut']

export type FrameChannelCounters = Record<RedirectorName, Readonly<LinkCounters>>

export class FrameChannel extends EventEmitter<FrameChannelEvents> {
  readonly #links: Record<RedirectorName, RedirectorLink>

  constructor(options: FrameChannelOptions) {
    super()
    const ordered = LAUNCH_ORDER.map((n) => options.redirectors[n])
    const make = (name: RedirectorName): RedirectorLink => {
      const spec = options.redirectors[name]
      const qmp = options.qmp
      const link = new RedirectorLink({
        path: spec.socketPath,
        role: spec.role === 'outdev' ? 'from-qemu' : 'to-qemu',
        vnetHdr: spec.vnetHdr,
        vnetHdrLen: options.vnetHdrLen,
        connectTimeoutMs: options.connectTimeoutMs,
        reconnectDelayMs: options.reconnectDelayMs,
        highWaterBytes: options.highWaterBytes,
        ...(spec.role === 'indev' && qmp
          ? { afterReconnect: () => recreateRedirector(qmp, ordered, spec, options.netdevId) }
          : {}),
      })
      link.on('down', (err) => this.emit('link-down', name, err))
      link.on('up', () => this.emit('link-up', name))
      return link
    }
    this.#links = { inOut: make('inOut'), inIn: make('inIn'), outIn: make('outIn'), outOut: make('outOut') }
    this.#links.outOut.on('frame', (f) => this.emit('guest-frame', f))
    this.#links.inOut.on('frame', (f) => this.emit('net-frame', f))
  }

  /** Connects all four sockets (QEMU listens with wait=off, so this works any time after launch). */
  async open(): Promise<void> {
    try {
      await Promise.all(LAUNCH_ORDER.map((n) => this.#links[n].open()))
    } catch (err) {
      this.close()
      throw err
    }
  }

  /** Injects a frame toward the guest (redirector inIn). Waits while the socket is congested. */
  toGuest(frame: Uint8Array): Promise<void> {
    return this.#links.inIn.send(frame)
  }

  /** Releases a frame to the network (redirector outIn → the tap). */
  toNet(frame: Uint8Array): Promise<void> {
    return this.#links.outIn.send(frame)
  }

  get counters(): FrameChannelCounters {
    return {
      inOut: { ...this.#links.inOut.counters },
      inIn: { ...this.#links.inIn.counters },
      outIn: { ...this.#links.outIn.counters },
      outOut: { ...this.#links.outOut.counters },
    }
  }

  /** Drops one link's connection on purpose (tests of the reconnect path). */
  disconnect(name: RedirectorName): void {
    this.#links[name].dropConnection()
  }

  close(): void {
    for (const n of LAUNCH_ORDER) this.#links[n].close()
  }
}
