import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A command the fake server received. */
export interface ReceivedCommand {
  readonly execute: string
  readonly arguments?: unknown
  readonly id?: string | number
}

/**
 * A scriptable QMP peer on a unix socket: sends a greeting (unless told not to), acknowledges
 * qmp_capabilities, and hands every later command to `onCommand`, which writes whatever the test
 * wants (valid replies, garbage, truncated JSON) or closes the connection.
 */
export class FakeQmpServer {
  readonly path: string
  private readonly dir: string
  private readonly server: Server
  readonly sockets: Socket[] = []
  onCommand: (cmd: ReceivedCommand, sock: Socket) => void = (cmd, sock) =>
    sock.write(`${JSON.stringify({ return: {}, id: cmd.id })}\r\n`)

  private constructor(greeting: string | null) {
    this.dir = mkdtempSync(join(tmpdir(), 'fakeqmp-'))
    this.path = join(this.dir, 'qmp.sock')
    this.server = createServer((sock) => {
      this.sockets.push(sock)
      sock.on('error', () => {})
      if (greeting !== null) sock.write(greeting)
      let buf = ''
      sock.on('data', (c) => {
        buf += c.toString()
        for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
          const cmd = JSON.parse(buf.slice(0, nl)) as ReceivedCommand
          buf = buf.slice(nl + 1)
          if (cmd.execute === 'qmp_capabilities')
            sock.write(`${JSON.stringify({ return: {}, id: cmd.id })}\r\n`)
          else this.onCommand(cmd, sock)
        }
      })
    })
  }

  static readonly GREETING =
    '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "fake"}, "capabilities": ["oob"]}}\r\n'

  static async start(greeting: string | null = FakeQmpServer.GREETING): Promise<FakeQmpServer> {
    const s = new FakeQmpServer(greeting)
    await new Promise<void>((resolve) => s.server.listen(s.path, resolve))
    return s
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
    rmSync(this.dir, { recursive: true, force: true })
  }
}
