import { type CommandResult, runCommand } from '../launch/run-command.js'

/** Runs `ip …` (iproute2), failing with CommandError on a non-zero exit. */
export function ip(...args: string[]): Promise<CommandResult> {
  return runCommand('ip', args, { timeoutMs: 15_000 })
}

/** Names of all links in the host namespace (`ip -o link show`). */
export async function listLinks(): Promise<string[]> {
  const r = await ip('-o', 'link', 'show')
  const names: string[] = []
  for (const line of r.stdout.split('\n')) {
    const m = /^\d+:\s+([^:@\s]+)/.exec(line)
    if (m) names.push(m[1])
  }
  return names
}

/** Names of all network namespaces (`ip netns list`). */
export async function listNamespaces(): Promise<string[]> {
  const r = await ip('netns', 'list')
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((n): n is string => Boolean(n))
}
