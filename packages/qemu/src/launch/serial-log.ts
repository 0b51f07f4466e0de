import { closeSync, openSync, readSync, statSync } from 'node:fs'

/** Keeps at most this much of the serial console in memory (guests here print a few KiB). */
const MAX_KEPT_CHARS = 4 * 1024 * 1024
const POLL_MS = 50

/**
 * Incremental reader of the serial console log that QEMU's `file` chardev appends to.
 * WHY polling: fs.watch misses appends on some filesystems; 50 ms is far below boot time.
 */
export class SerialLog {
  private text = ''
  private offset = 0
  private readonly buf = Buffer.allocUnsafe(64 * 1024)

  constructor(readonly path: string) {}

  /** Reads whatever QEMU appended since the last call; returns the whole text seen so far. */
  refresh(): string {
    let fd: number
    try {
      fd = openSync(this.path, 'r')
    } catch {
      return this.text // not created yet
    }
    try {
      if (statSync(this.path).size < this.offset) {
        this.offset = 0 // truncated by a relaunch
        this.text = ''
      }
      for (;;) {
        const n = readSync(fd, this.buf, 0, this.buf.length, this.offset)
        if (n <= 0) break
        this.offset += n
        this.text += this.buf.toString('latin1', 0, n)
      }
    } finally {
      closeSync(fd)
    }
    if (this.text.length > MAX_KEPT_CHARS) this.text = this.text.slice(-MAX_KEPT_CHARS)
    return this.text
  }

  /** Last `chars` characters of the console. */
  tail(chars = 2000): string {
    return this.refresh().slice(-chars)
  }

  /**
   * Resolves with the first match of `re` in the console (from its start), polling until
   * `timeoutMs`. `abort` lets the owner fail the wait early (e.g. QEMU exited).
   */
  waitFor(re: RegExp, timeoutMs: number, abort?: Promise<Error>): Promise<RegExpExecArray> {
    const pattern = new RegExp(re.source, re.flags.replace('g', '').replace('y', ''))
    return new Promise((resolve, reject) => {
      let settled = false
      const finish = (err: Error | undefined, m?: RegExpExecArray) => {
        if (settled) return
        settled = true
        clearInterval(poll)
        clearTimeout(timer)
        if (err) reject(err)
        else resolve(m!)
      }
      const check = () => {
        const m = pattern.exec(this.refresh())
        if (m) finish(undefined, m)
      }
      const poll = setInterval(check, POLL_MS)
      const timer = setTimeout(() => {
        check()
        finish(new SerialTimeoutError(re, timeoutMs, this.tail()))
      }, timeoutMs)
      abort?.then(
        (e) => {
          check()
          finish(e)
        },
        () => {},
      )
      check()
    })
  }
}

/** The serial console did not show the expected text in time. */
export class SerialTimeoutError extends Error {
  override readonly name = 'SerialTimeoutError'
  constructor(
    readonly pattern: RegExp,
    readonly timeoutMs: number,
    readonly serialTail: string,
  ) {
    super(`serial console did not match ${pattern} within ${timeoutMs} ms; tail:\n${serialTail}`)
  }
}
