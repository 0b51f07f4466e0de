// The client port's wire format: `u32 BE length | u8 type | body`, length counting type+body.
//   client -> replica: Request  (body = a KV request frame for the VM, see @plover/vmsync kv-frame)
//   replica -> client: Response (body = a KV response frame the VM emitted, released by the guard)
//                      NotLeader (body = JSON { leader: id (0 = unknown), client: "host:port" | null })
// The replica never looks inside Request bodies beyond the client id it routes answers by.

export enum ClientMsg {
  Request = 1,
  Response = 2,
  NotLeader = 3,
}

export interface NotLeaderInfo {
  readonly leader: number
  readonly client: string | null
}

/** Largest message accepted (a KV record is at most 4 KiB; leave room). */
export const MAX_CLIENT_MSG = 64 * 1024

export class ClientWireError extends Error {
  override name = 'ClientWireError'
}

export function encodeClientMsg(type: ClientMsg, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length)
  out.writeUInt32BE(body.length + 1, 0)
  out[4] = type
  out.set(body, 5)
  return out
}

export function encodeNotLeader(info: NotLeaderInfo): Buffer {
  return encodeClientMsg(ClientMsg.NotLeader, Buffer.from(JSON.stringify(info)))
}

/** Incremental decoder for one TCP stream. */
export class ClientMsgDecoder {
  private buf: Buffer = Buffer.alloc(0)

  /** Appends bytes; returns every complete message. Throws ClientWireError on garbage. */
  push(chunk: Buffer): { type: ClientMsg; body: Buffer }[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk])
    const out: { type: ClientMsg; body: Buffer }[] = []
    let pos = 0
    while (this.buf.length - pos >= 4) {
      const len = this.buf.readUInt32BE(pos)
      if (len < 1 || len > MAX_CLIENT_MSG) throw new ClientWireError(`bad message length ${len}`)
      if (this.buf.length - pos < 4 + len) break
      const type = this.buf[pos + 4]
      if (type !== ClientMsg.Request && type !== ClientMsg.Response && type !== ClientMsg.NotLeader) {
        throw new ClientWireError(`unknown message type ${type}`)
      }
      out.push({ type, body: Buffer.from(this.buf.subarray(pos + 5, pos + 4 + len)) })
      pos += 4 + len
    }
    this.buf = pos === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(pos)
    return out
  }
}
