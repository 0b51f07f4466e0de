/** QEMU answered a command with `{"error": {"class", "desc"}}`. */
export class QmpError extends Error {
  override readonly name = 'QmpError'
  constructor(
    /** QEMU's error class, e.g. `GenericError`, `CommandNotFound`, `DeviceNotFound`. */
    readonly errorClass: string,
    /** QEMU's human-readable description. */
    readonly desc: string,
    /** The command that failed. */
    readonly command: string,
  ) {
    super(`QMP ${command} failed: ${errorClass}: ${desc}`)
  }
  /** Same as `errorClass`, under QEMU's own field name. */
  get class(): string {
    return this.errorClass
  }
}

/** The peer sent bytes that are not a valid QMP message (garbage, truncated JSON, wrong shape). */
export class QmpProtocolError extends Error {
  override readonly name = 'QmpProtocolError'
  constructor(
    message: string,
    /** The offending input (shortened to 200 chars). */
    readonly excerpt: string,
  ) {
    super(`QMP protocol error: ${message}${excerpt ? ` (${JSON.stringify(excerpt)})` : ''}`)
  }
}

/** A command (or the greeting/handshake) got no answer in time. */
export class QmpTimeoutError extends Error {
  override readonly name = 'QmpTimeoutError'
  constructor(
    readonly command: string,
    readonly timeoutMs: number,
  ) {
    super(`QMP ${command} got no reply within ${timeoutMs} ms`)
  }
}

/** The QMP connection is gone; every command pending at that moment is rejected with this. */
export class QmpDisconnectedError extends Error {
  override readonly name = 'QmpDisconnectedError'
  constructor(
    readonly reason: string,
    /** True when our side closed it (`close()`), false when the peer did or the socket failed. */
    readonly byClient: boolean,
    /** The command this rejection is for, if any. */
    readonly command?: string,
  ) {
    super(`QMP connection lost${command ? ` during ${command}` : ''}: ${reason}`)
  }
}

/** Shortens input for error messages. */
export function excerptOf(text: string, max = 200): string {
  return text.length > max ? `${text.slice(0, max)}…` : text
}
