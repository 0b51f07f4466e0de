import { spawn } from 'node:child_process'

/** Result of a finished child process. */
export interface CommandResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

export interface RunCommandOptions {
  /** Kill the child with SIGKILL after this many ms (default: no limit). */
  readonly timeoutMs?: number
  readonly cwd?: string
  readonly env?: NodeJS.ProcessEnv
  /** Bytes written to the child's stdin, then closed. */
  readonly input?: string | Buffer
  /** When true (default), a non-zero exit rejects with CommandError. */
  readonly check?: boolean
}

/** A command that exited non-zero (or was killed); carries its output for the message. */
export class CommandError extends Error {
  override readonly name = 'CommandError'
  constructor(
    readonly command: string,
    readonly args: readonly string[],
    readonly result: CommandResult,
  ) {
    const how = result.signal ? `signal ${result.signal}` : `exit code ${result.code}`
    const detail = (result.stderr || result.stdout).trim().slice(-2000)
    super(`${command} ${args.join(' ')} failed (${how})${detail ? `: ${detail}` : ''}`)
  }
}

/**
 * Runs a short-lived host command (apt-get, ip, cpio, …) and collects its output.
 * WHY not execFile: we need stdin input and a uniform typed error with stderr attached.
 */
export function runCommand(
  command: string,
  args: readonly string[],
  options: RunCommandOptions = {},
): Promise<CommandResult> {
  const { timeoutMs, cwd, env, input, check = true } = options
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (c: Buffer) => out.push(c))
    child.stderr.on('data', (c: Buffer) => err.push(c))
    const timer =
      timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), timeoutMs).unref()
    child.on('error', (e) => {
      if (timer) clearTimeout(timer)
      reject(e)
    })
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer)
      const result: CommandResult = {
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }
      if (check && code !== 0) reject(new CommandError(command, args, result))
      else resolve(result)
    })
    child.stdin.on('error', () => {}) // the child may exit before reading its input
    child.stdin.end(input)
  })
}
