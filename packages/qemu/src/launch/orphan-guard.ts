import type { ChildProcess } from 'node:child_process'

const live = new Set<ChildProcess>()
let installed = false

/**
 * Kills every registered child with SIGKILL when this Node process exits normally or via
 * process.exit(). Deaths by signal are covered by spawning QEMU under `setpriv --pdeathsig`.
 */
export function guardChild(child: ChildProcess): void {
  if (!installed) {
    installed = true
    process.once('exit', () => {
      for (const c of live) {
        try {
          c.kill('SIGKILL')
        } catch {}
      }
    })
  }
  live.add(child)
  child.once('exit', () => live.delete(child))
}
