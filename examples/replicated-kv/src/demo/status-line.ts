// The live one-line status. On a terminal it rewrites one line in place; elsewhere (CI, a test,
// a pipe) it prints a line every few seconds so the log stays readable.
import { type ClusterNumbers, formatBytes, identicalPct, meanPauseMs } from './cluster-numbers.js'

export class StatusLine {
  private readonly tty: boolean
  private shown = false
  private lastPrint = 0
  private prev: { at: number; responses: number } | undefined

  /** Starts the ops/s clock (responses counted so far are not part of the first rate). */
  begin(n: ClusterNumbers): void {
    this.prev = { at: Date.now(), responses: n.responses }
  }

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean } = process.stdout,
    private readonly everyMs = 3000,
  ) {
    this.tty = out.isTTY === true
  }

  /** A normal message: clears the status line first. */
  say(line: string): void {
    this.clear()
    this.out.write(`${line}\n`)
  }

  update(n: ClusterNumbers, extra: { elapsedS: number; primary: number | string; mode: string }): void {
    const now = Date.now()
    let opsPerS = 0
    if (this.prev && now > this.prev.at)
      opsPerS = ((n.responses - this.prev.responses) * 1000) / (now - this.prev.at)
    this.prev = { at: now, responses: n.responses }
    const saving = n.vsmrBytes > 0 ? `${(n.remusBytes / n.vsmrBytes).toFixed(1)}x less` : '-'
    const line =
      `t=${extra.elapsedS.toFixed(0).padStart(3)}s primary=${extra.primary} ${opsPerS.toFixed(0).padStart(5)} ops/s` +
      ` | syncs ${n.vsmrSyncs} (+${n.fullSyncs} full)` +
      ` | identical ${identicalPct(n).toFixed(1)}%` +
      ` | sent ${formatBytes(n.vsmrBytes)} vs Remus ${formatBytes(n.remusBytes)} (${saving})` +
      ` | pause avg ${meanPauseMs(n).toFixed(1)} ms | ${extra.mode}`
    if (this.tty) {
      this.out.write(`\r\x1b[2K${line}`)
      this.shown = true
    } else if (now - this.lastPrint >= this.everyMs) {
      this.lastPrint = now
      this.out.write(`${line}\n`)
    }
  }

  clear(): void {
    if (this.tty && this.shown) this.out.write('\r\x1b[2K')
    this.shown = false
  }
}
