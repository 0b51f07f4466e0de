import { StringDecoder } from 'node:string_decoder'
import { excerptOf, QmpProtocolError } from './errors.js'
import type { QmpErrorReply, QmpEventMessage, QmpGreeting, QmpMessage, QmpReturnReply } from './wire.js'

/** One decoded line: a message, or the reason it could not be one. */
export type DecodeResult = QmpMessage | QmpProtocolError

/** Longest line accepted; QEMU's largest replies (query-qmp-schema) are well under this. */
export const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function isId(v: unknown): v is string | number | undefined {
  return v === undefined || typeof v === 'string' || typeof v === 'number'
}

/** Checks one parsed JSON value against the four QMP message shapes. */
export function classifyMessage(value: unknown, raw: string): DecodeResult {
  if (!isRecord(value)) return new QmpProtocolError('message is not a JSON object', excerptOf(raw))
  if ('QMP' in value) {
    if (!isRecord(value.QMP)) return new QmpProtocolError('malformed greeting', excerptOf(raw))
    return { kind: 'greeting', QMP: value.QMP } as QmpGreeting
  }
  if ('return' in value) {
    if (!isId(value.id)) return new QmpProtocolError('reply id is not a string or number', excerptOf(raw))
    return { kind: 'return', return: value.return, id: value.id } as QmpReturnReply
  }
  if ('error' in value) {
    const e = value.error
    if (!isRecord(e) || typeof e.class !== 'string' || typeof e.desc !== 'string' || !isId(value.id)) {
      return new QmpProtocolError('malformed error reply', excerptOf(raw))
    }
    return { kind: 'error', error: { class: e.class, desc: e.desc }, id: value.id } as QmpErrorReply
  }
  if (typeof value.event === 'string') {
    const ts = isRecord(value.timestamp) ? value.timestamp : {}
    const ev: QmpEventMessage = {
      kind: 'event',
      event: value.event,
      data: isRecord(value.data) ? value.data : {},
      timestamp: {
        seconds: typeof ts.seconds === 'number' ? ts.seconds : 0,
        microseconds: typeof ts.microseconds === 'number' ? ts.microseconds : 0,
      },
    }
    return ev
  }
  return new QmpProtocolError('unrecognized message (no QMP/return/error/event)', excerptOf(raw))
}

/**
 * Splits the QMP byte stream into messages. QEMU ends every message with a newline, so a line is
 * a message; anything else (garbage, truncated JSON, an over-long line) becomes a QmpProtocolError
 * result for that line only — the decoder keeps going and never throws.
 */
export class QmpDecoder {
  private readonly text = new StringDecoder('utf8')
  private partial = ''
  /** True while skipping the rest of an over-long line. */
  private discarding = false

  constructor(private readonly maxLineBytes = DEFAULT_MAX_LINE_BYTES) {}

  /** Feeds a chunk; returns every complete line's result, in order. */
  push(chunk: Buffer | string): DecodeResult[] {
    const data = typeof chunk === 'string' ? chunk : this.text.write(chunk)
    const out: DecodeResult[] = []
    let start = 0
    for (let nl = data.indexOf('\n'); nl !== -1; nl = data.indexOf('\n', start)) {
      const piece = data.slice(start, nl)
      start = nl + 1
      if (this.discarding) {
        this.discarding = false
        this.partial = ''
        continue
      }
      const line = this.partial + piece
      this.partial = ''
      const r = this.decodeLine(line)
      if (r) out.push(r)
    }
    if (!this.discarding) {
      this.partial += data.slice(start)
      if (this.partial.length > this.maxLineBytes) {
        out.push(new QmpProtocolError(`line longer than ${this.maxLineBytes} bytes`, excerptOf(this.partial)))
        this.partial = ''
        this.discarding = true
      }
    }
    return out
  }

  /** Call at end of stream: a buffered unterminated line is reported as truncated. */
  end(): QmpProtocolError | undefined {
    const rest = (this.partial + this.text.end()).trim()
    this.partial = ''
    const wasDiscarding = this.discarding
    this.discarding = false
    if (!rest || wasDiscarding) return undefined
    return new QmpProtocolError('stream ended inside a message (truncated)', excerptOf(rest))
  }

  private decodeLine(line: string): DecodeResult | undefined {
    const trimmed = line.trim()
    if (!trimmed) return undefined
    let value: unknown
    try {
      value = JSON.parse(trimmed)
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e)
      return new QmpProtocolError(`invalid JSON: ${why}`, excerptOf(trimmed))
    }
    return classifyMessage(value, trimmed)
  }
}
