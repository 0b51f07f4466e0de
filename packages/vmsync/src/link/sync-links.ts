// Who talks to whom on the sync link. Every VM replica listens on its sync port; the backup
// dials the current leader's sync port and keeps redialling while that leader lasts. The leader
// accepts (authenticated by the cluster key) and hands the link to its primary side; a replica
// that is not the leader refuses incoming links.
import { connectSyncLink, SyncLinkServer, type TcpSyncLink } from './tcp-link.js'

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
  readonly onLink: (link: TcpSyncLink, direction: 'from-backup' | 'to-primary') => void
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
      o.logger.info('backup connected on the sync link')
      o.onLink(link, 'from-backup')
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
        this.o.onLink(link, 'to-primary')
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
