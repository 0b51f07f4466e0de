// Adapted from examples/replicated-kv/src/replica/http-server.ts (GET /status answers 503 while
// the replica is still starting, e.g. its guest boots). The operator's HTTP port: GET /metrics
// (Prometheus), GET /status (JSON: the IPC status message), and POST /admin/membership
// {"remove": id} | {"add": id} | {"add": id, "role": "learner"} on the leader.
import http from 'node:http'

export interface HttpHandlers {
  metrics(): Promise<string>
  /** undefined while starting (503). */
  status(): unknown
  /** Resolves with a JSON-able result; rejects with an Error whose message goes to the caller. */
  membership(change: { add?: number; remove?: number; role?: string }): Promise<unknown>
}

export class HttpServer {
  private readonly server: http.Server

  constructor(
    private readonly host: string,
    private readonly port: number,
    handlers: HttpHandlers,
  ) {
    this.server = http.createServer((req, res) => {
      const send = (code: number, body: string, type = 'application/json') => {
        res.writeHead(code, { 'content-type': type })
        res.end(body)
      }
      const url = (req.url ?? '/').split('?')[0]
      if (req.method === 'GET' && url === '/metrics') {
        handlers.metrics().then(
          (text) => send(200, text, 'text/plain; version=0.0.4'),
          (err: Error) => send(500, JSON.stringify({ error: err.message })),
        )
      } else if (req.method === 'GET' && url === '/status') {
        const status = handlers.status()
        if (status === undefined) send(503, JSON.stringify({ error: 'starting' }))
        else send(200, JSON.stringify(status))
      } else if (req.method === 'POST' && url === '/admin/membership') {
        let body = ''
        req.on('data', (c: Buffer) => {
          body += c.toString()
          if (body.length > 4096) req.destroy()
        })
        req.on('end', () => {
          let change: { add?: number; remove?: number; role?: string }
          try {
            change = JSON.parse(body)
          } catch {
            return send(400, JSON.stringify({ error: 'body must be JSON: {"add": id} or {"remove": id}' }))
          }
          handlers.membership(change).then(
            (r) => send(200, JSON.stringify(r)),
            (err: Error) => send(409, JSON.stringify({ error: err.message })),
          )
        })
      } else {
        send(404, JSON.stringify({ error: 'not found: GET /metrics, GET /status, POST /admin/membership' }))
      }
    })
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(this.port, this.host, () => {
        this.server.off('error', reject)
        resolve()
      })
    })
  }

  close(): Promise<void> {
    this.server.closeAllConnections()
    return new Promise((r) => this.server.close(() => r()))
  }
}
