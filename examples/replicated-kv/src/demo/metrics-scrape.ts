// Reads a replica's Prometheus /metrics and /status over HTTP. The demo shows only numbers that
// came from here (or from its own client): nothing is computed from assumptions.
import http from 'node:http'

/** `name{labels}` -> value, for every sample line. */
export type MetricMap = Map<string, number>

export function parsePrometheus(text: string): MetricMap {
  const out: MetricMap = new Map()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const sp = line.lastIndexOf(' ')
    const value = Number(line.slice(sp + 1))
    if (Number.isNaN(value)) continue
    out.set(line.slice(0, sp), value)
  }
  return out
}

/** The value of `name` whatever its labels (first match), or 0. */
export function metric(m: MetricMap | undefined, name: string): number {
  if (!m) return 0
  for (const [k, v] of m) if (k === name || k.startsWith(`${name}{`)) return v
  return 0
}

export function httpGet(port: number, path: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, timeout: timeoutMs }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () =>
        res.statusCode === 200 ? resolve(body) : reject(new Error(`${path}: ${res.statusCode} ${body}`)),
      )
    })
    req.on('timeout', () => req.destroy(new Error(`${path}: timed out`)))
    req.on('error', reject)
  })
}

/** POST `body` as JSON with `Authorization: Bearer <token>` (the admin route's token). */
export function httpPost(
  port: number,
  path: string,
  body: unknown,
  token: string,
  timeoutMs = 5000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body)
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        timeout: timeoutMs,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (text += c))
        res.on('end', () =>
          res.statusCode === 200 ? resolve(text) : reject(new Error(`${path}: ${res.statusCode} ${text}`)),
        )
      },
    )
    req.on('timeout', () => req.destroy(new Error(`${path}: timed out`)))
    req.on('error', reject)
    req.end(data)
  })
}
