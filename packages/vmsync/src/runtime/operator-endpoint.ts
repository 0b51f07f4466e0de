// A replica's operator port over HTTP: GET /metrics (Prometheus text), GET /status (JSON), and
// POST /admin/membership to replace a replica after a failover.
//
// WHY the admin route needs a token: a membership change can remove the backup or the witness,
// so whoever can reach this port could otherwise take the cluster's fault tolerance away.
// Metrics and status stay open, as Prometheus scrapes them. Without an `adminToken` the admin
// route is off (403), so a forgotten setting fails closed. With `tls` the port speaks HTTPS, so the
// token does not cross the network in clear.
import { createHash, timingSafeEqual } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import http from 'node:http'
import https from 'node:https'
import { createSecureContext } from 'node:tls'
import {
  type MembershipRequest,
  MembershipRequestError,
  parseMembershipRequest,
} from './membership-request.js'

export interface OperatorHandlers {
  metrics(): Promise<string> | string
  /** JSON-able; undefined while the replica is still starting (503). */
  status(): unknown
  /** Carries out a checked request; a rejection's message goes back to the caller (409). */
  membership(req: MembershipRequest): Promise<unknown>
}

export interface OperatorEndpointOptions {
  readonly host: string
  /** 0: any free port (see `port` after listen()). */
  readonly port: number
  /** Bearer token for POST /admin/*; unset: the admin route answers 403. At least 16 characters. */
  readonly adminToken?: string
  /** Serve HTTPS with this certificate and key (PEM) instead of plain HTTP. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer }
  readonly handlers: OperatorHandlers
}

export interface OperatorTlsFiles {
  readonly certFile: string
  readonly keyFile: string
}

/**
 * Reads the certificate and key files for `tls` and checks that they make a TLS context, so a
 * replica can refuse a bad setting at start. The error names the setting (`setting`, e.g. the
 * config field holding `files`) and the file or pair at fault.
 */
export async function readOperatorTls(
  files: OperatorTlsFiles,
  setting = 'tls',
): Promise<{ cert: Buffer; key: Buffer }> {
  const read = (path: string, field: keyof OperatorTlsFiles) =>
    readFile(path).catch((err: Error) => {
      throw new Error(`cannot read ${setting}.${field} ${path}: ${err.message}`)
    })
  const tls = { cert: await read(files.certFile, 'certFile'), key: await read(files.keyFile, 'keyFile') }
  try {
    createSecureContext(tls)
  } catch (err) {
    throw new Error(`${setting}: the certificate or key is not usable: ${(err as Error).message}`)
  }
  return tls
}

/** A request body larger than this is refused (413): a membership change is a few bytes. */
export const MAX_ADMIN_BODY_BYTES = 4096
export const MIN_ADMIN_TOKEN_LENGTH = 16

const ROUTES = 'GET /metrics, GET /status, POST /admin/membership'

export class OperatorEndpoint {
  private readonly server: http.Server | https.Server
  private readonly tokenDigest: Buffer | undefined

  constructor(private readonly o: OperatorEndpointOptions) {
    if (o.adminToken !== undefined && o.adminToken.length < MIN_ADMIN_TOKEN_LENGTH)
      throw new RangeError(`adminToken must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters`)
    this.tokenDigest = o.adminToken === undefined ? undefined : digest(o.adminToken)
    // Nothing a request does may throw out of the handler: that would end the replica process.
    const route = (req: http.IncomingMessage, res: http.ServerResponse) => {
      try {
        this.route(req, res)
      } catch (err) {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ error: (err as Error).message }))
      }
    }
    this.server = o.tls
      ? https.createServer({ cert: o.tls.cert, key: o.tls.key }, route)
      : http.createServer(route)
  }

  /** The port it listens on (the one chosen when `port` was 0). */
  get port(): number {
    const a = this.server.address()
    return typeof a === 'object' && a !== null ? a.port : this.o.port
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

  close(): Promise<void> {
    this.server.closeAllConnections()
    return new Promise((r) => this.server.close(() => r()))
  }

  private route(req: http.IncomingMessage, res: http.ServerResponse): void {
    const send = (code: number, body: unknown, headers: http.OutgoingHttpHeaders = {}) => {
      const text = typeof body === 'string' ? body : JSON.stringify(body)
      res.writeHead(code, { 'content-type': 'application/json', ...headers })
      res.end(text)
    }
    const url = (req.url ?? '/').split('?')[0]
    if (req.method === 'GET' && url === '/metrics') {
      Promise.resolve()
        .then(() => this.o.handlers.metrics())
        .then(
          (text) => send(200, text, { 'content-type': 'text/plain; version=0.0.4' }),
          (err: Error) => send(500, { error: err.message }),
        )
    } else if (req.method === 'GET' && url === '/status') {
      const [code, body] = this.status()
      send(code, body)
    } else if (url === '/admin/membership') {
      const refused = this.refuseAdmin(req)
      if (refused) send(refused.code, { error: refused.error }, refused.headers)
      else
        readBody(req).then(
          (body) => this.membership(body).then(([code, out]) => send(code, out)),
          (err: Error) => send(413, { error: err.message }),
        )
    } else {
      send(404, { error: `not found: ${ROUTES}` })
    }
  }

  private status(): [number, unknown] {
    try {
      const status = this.o.handlers.status()
      return status === undefined ? [503, { error: 'starting' }] : [200, status]
    } catch (err) {
      return [500, { error: (err as Error).message }]
    }
  }

  private refuseAdmin(
    req: http.IncomingMessage,
  ): { code: number; error: string; headers?: http.OutgoingHttpHeaders } | undefined {
    if (req.method !== 'POST') return { code: 405, error: 'use POST', headers: { allow: 'POST' } }
    if (!this.tokenDigest) return { code: 403, error: 'the admin route is off: no adminToken is configured' }
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')
    // Digests of equal length, so the comparison's time says nothing about the token.
    if (!m || !timingSafeEqual(digest(m[1]), this.tokenDigest))
      return {
        code: 401,
        error: 'a valid "Authorization: Bearer <adminToken>" header is required',
        headers: { 'www-authenticate': 'Bearer' },
      }
    return undefined
  }

  private async membership(body: string): Promise<[number, unknown]> {
    let req: MembershipRequest
    try {
      req = parseMembershipRequest(JSON.parse(body))
    } catch (err) {
      const why = err instanceof MembershipRequestError ? err.message : 'the body is not JSON'
      return [400, { error: why }]
    }
    try {
      return [200, await this.o.handlers.membership(req)]
    } catch (err) {
      return [409, { error: (err as Error).message }]
    }
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > MAX_ADMIN_BODY_BYTES) {
        req.removeAllListeners('data')
        req.resume()
        reject(new Error(`the body exceeds ${MAX_ADMIN_BODY_BYTES} bytes`))
      } else chunks.push(c)
    })
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}
