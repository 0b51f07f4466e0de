// Who talks to whom on the sync link. Every VM replica listens on its sync port; the backup
// dials the current leader's sync port and keeps redialling while that leader lasts. The leader
// accepts (authenticated by the cluster key) and hands the link to its primary side; a replica
// that is not the leader refuses incoming links.
//
// The dialer's first frame names its replica id (IDENTITY_MAGIC + u32), consumed here before the
// link reaches the sync protocol, so the primary knows which member its backup is (e.g. to make
// a learner a voter once its full sync completed). The trust model is the cluster key's: a
// holder of the key may claim any id, as on the consensus transport.
import { connectSyncLink, SyncLinkServer, type TcpSyncLink } from './tcp-link.js'

const IDENTITY_MAGIC = Buffer.from('PLVSYNC-ID1:')

/** The first frame a dialer sends: who it is. */
export function encodeSyncIdentity(replicaId: number): Uint8Array {
  const b = Buffer.alloc(IDENTITY_MAGIC.length + 4)
  IDENTITY_MAGIC.copy(b)
  b.writeUInt32BE(replicaId, IDENTITY_MAGIC.length)
  return b
}

/** The replica id in an identity frame, or undefined if `m` is not one. */
export function decodeSyncIdentity(m: Uint8Array): number | undefined {
  if (m.length !== IDENTITY_MAGIC.length + 4) return undefined
  const b = Buffer.from(m.buffer, m.byteOffset, m.length)
  if (!b.subarray(0, IDENTITY_MAGIC.length).equals(IDENTITY_MAGIC)) return undefined
  const id = b.readUInt32BE(IDENTITY_MAGIC.length)
  return id > 0 ? id : undefined
}

/** The two lines SyncLinks writes; any structured logger fits. */
export interface SyncLinksLogger {
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
}

export interface SyncLinksOptions {
  readonly host: string
  readonly port: number
  readonly psk: Uint8Array
  readonly logger: SyncLinksLogger
  readonly isLeader: () => boolean
  /** This replica's VM is primary (its log leads and the primacy gate let it serve). */
  readonly accepting: () => boolean
  /** The current leader's sync address, if it is known and runs a VM. */
  readonly leaderAddress: () => { id: number; host: string; port: number } | undefined
  /** This replica's id, sent as the first frame of every link it dials. */
  readonly selfId: number
  /** An accepted link whose dialer has not identified itself by then is closed (default 5000 ms). */
  readonly identityTimeoutMs?: number
  /** `peerId`: the backup's replica id on a 'from-backup' link; the leader's on 'to-primary'. */
  readonly onLink: (link: TcpSyncLink, direction: 'from-backup' | 'to-primary', peerId: number) => void
}

const REDIAL_MS = 200

export class SyncLinks {
  private readonly server: SyncLinkServer
  private dialed: { leader: number; link: TcpSyncLink } | undefined
  private dialing = false
  private timer: NodeJS.Timeout | undefined
  private closed = false

  constructor(private readonly o: SyncLinksOptions) {
    this.server = new SyncLinkServer({ psk: o.psk })
    this.server.on('link', (link) => {
      if (!o.accepting()) {
        link.close()
        return
      }
      // The link goes to the protocol only once the dialer said who it is.
      const timer = setTimeout(() => {
        link.off('message', first)
        o.logger.warn('sync link closed: the dialer did not identify itself')
        link.close()
      }, o.identityTimeoutMs ?? 5000)
      const first = (m: Uint8Array) => {
        clearTimeout(timer)
        link.off('message', first)
        const peer = decodeSyncIdentity(m)
        if (peer === undefined || !o.accepting()) {
          if (peer === undefined) o.logger.warn('sync link closed: its first frame is not an identity')
          link.close()
          return
        }
        o.logger.info('backup connected on the sync link', { backup: peer })
        // Synchronously: frames after the identity are delivered to the protocol's listener.
        o.onLink(link, 'from-backup', peer)
      }
      link.on('message', first)
      link.once('close', () => clearTimeout(timer))
    })
    this.server.on('rejected', (err) => o.logger.warn('sync link handshake rejected', { error: err }))
  }

  async listen(): Promise<void> {
    await this.server.listen(this.o.port, this.o.host)
  }

  /** Leadership or the known leader changed: (re)dial if we are a backup. */
  refresh(): void {
    if (this.closed) return
    const target = this.o.isLeader() ? undefined : this.o.leaderAddress()
    if (this.dialed && this.dialed.leader !== target?.id) {
      this.dialed.link.close()
      this.dialed = undefined
    }
    if (!target || this.dialed || this.dialing) return
    this.dialing = true
    connectSyncLink({ host: target.host, port: target.port, psk: this.o.psk }).then(
      (link) => {
        this.dialing = false
        if (this.closed || this.o.isLeader() || this.o.leaderAddress()?.id !== target.id) {
          link.close()
          this.refresh()
          return
        }
        this.dialed = { leader: target.id, link }
        link.on('close', () => {
          if (this.dialed?.link === link) this.dialed = undefined
          this.later()
        })
        this.o.logger.info('connected to the primary on the sync link', { primary: target.id })
        // Before anything of the protocol: sends are ordered on the link.
        void link.send(encodeSyncIdentity(this.o.selfId)).catch(() => {})
        this.o.onLink(link, 'to-primary', target.id)
      },
      () => {
        this.dialing = false
        this.later()
      },
    )
  }

  async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.timer)
    this.dialed?.link.close()
    await this.server.close()
  }

  private later(): void {
    if (this.closed || this.timer) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.refresh()
    }, REDIAL_MS)
  }
}
