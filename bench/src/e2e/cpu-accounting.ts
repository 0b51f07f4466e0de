// Where the host's CPU goes during a bench's load window, by kind of process: the guests (QEMU),
// the replica processes (Node, with their hash workers), the client (redis-benchmark), this bench
// process (the orchestrator; in the relay anchor also every frame), and everything else.
//
// WHY: every reply of a replicated guest costs CPU in two guests and the replicas' Node processes,
// while the unreplicated anchor pays for one guest. On a host with few cores that alone bounds the
// throughput any replicated design can reach; measuring CPU per request in the same run as the
// anchor turns "the host is too small" into numbers: what one request costs the guests, and what
// the replicas spend beside it.
import { readdirSync, readFileSync } from 'node:fs'

/** Linux's USER_HZ (the unit of /proc/<pid>/stat times), 100 on every architecture we run. */
const TICKS_PER_S = 100

export type CpuCategory = 'guests' | 'replicas' | 'client' | 'bench' | 'other'
export const CPU_CATEGORIES: readonly CpuCategory[] = ['guests', 'replicas', 'client', 'bench', 'other']

interface Sample {
  readonly at: number
  /** Host-wide busy and total ticks (/proc/stat, all CPUs). */
  readonly hostBusy: number
  readonly hostTotal: number
  /** Per live process: its category and CPU ticks so far (all its threads). */
  readonly procs: ReadonlyMap<
    number,
    { readonly category: Exclude<CpuCategory, 'other'>; readonly ticks: number }
  >
}

export interface CpuUse {
  readonly seconds: number
  /** Cores used on average over the window, per category (`other`: host busy minus the rest). */
  readonly cores: Readonly<Record<CpuCategory, number>>
  /** Host busy cores on average, and the host's core count. */
  readonly hostBusyCores: number
  readonly hostCores: number
}

function hostTicks(): { busy: number; total: number; cores: number } {
  const lines = readFileSync('/proc/stat', 'utf8').split('\n')
  const f = lines[0]!.trim().split(/\s+/).slice(1).map(Number)
  // user nice system idle iowait irq softirq steal (guest times are already in user). Steal is
  // time the hypervisor below gave to someone else: neither ours nor idle.
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0)
  const idle = (f[3] ?? 0) + (f[4] ?? 0) + (f[7] ?? 0)
  const cores = lines.filter((l) => /^cpu\d+ /.test(l)).length
  return { busy: total - idle, total, cores }
}

function categoryOf(pid: number, comm: string): Exclude<CpuCategory, 'other'> | undefined {
  if (pid === process.pid) return 'bench'
  // @plover/qemu names its QEMUs' processes plover-<name> (QEMU's -name …,process=).
  if (comm.startsWith('qemu-system') || comm.startsWith('plover-')) return 'guests'
  if (comm === 'redis-benchmark') return 'client'
  if (comm.startsWith('node')) {
    let cmd = ''
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    } catch {
      return undefined
    }
    if (cmd.includes('qemu-redis') && cmd.includes('replica')) return 'replicas'
  }
  return undefined
}

function sample(): Sample {
  const host = hostTicks()
  const procs = new Map<number, { category: Exclude<CpuCategory, 'other'>; ticks: number }>()
  for (const name of readdirSync('/proc')) {
    const pid = Number(name)
    if (!Number.isInteger(pid)) continue
    let stat: string
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    } catch {
      continue // exited meanwhile
    }
    // comm may contain spaces and parentheses: the fields start after the last ')'.
    const close = stat.lastIndexOf(')')
    const comm = stat.slice(stat.indexOf('(') + 1, close)
    const category = categoryOf(pid, comm)
    if (!category) continue
    const f = stat
      .slice(close + 2)
      .split(' ')
      .map(Number)
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after "pid (comm) ".
    procs.set(pid, { category, ticks: (f[11] ?? 0) + (f[12] ?? 0) })
  }
  return { at: Date.now(), hostBusy: host.busy, hostTotal: host.total, procs }
}

/** Samples /proc every `periodMs` from start() to stop(); use() reports any window inside. */
export class CpuAccounting {
  private readonly samples: Sample[] = []
  private timer: NodeJS.Timeout | undefined
  private readonly cores = hostTicks().cores

  constructor(private readonly periodMs = 500) {}

  start(): void {
    this.samples.push(sample())
    this.timer = setInterval(() => this.samples.push(sample()), this.periodMs)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer === undefined) return
    clearInterval(this.timer)
    this.timer = undefined
    this.samples.push(sample())
  }

  /** The CPU used between the first sample at or after `from` and the last at or before `to`. */
  use(from: number, to: number): CpuUse | undefined {
    const inside = this.samples.filter((s) => s.at >= from && s.at <= to)
    const a = inside[0]
    const b = inside[inside.length - 1]
    if (!a || !b || b.at - a.at < 1000) return undefined
    const seconds = (b.at - a.at) / 1000
    const ticks: Record<CpuCategory, number> = { guests: 0, replicas: 0, client: 0, bench: 0, other: 0 }
    for (const [pid, p] of b.procs) {
      // A process started inside the window counts from zero; one that exited is not in `b`
      // (its last partial period is lost, at most periodMs of it).
      ticks[p.category] += p.ticks - (a.procs.get(pid)?.ticks ?? 0)
    }
    const hostBusyTicks = b.hostBusy - a.hostBusy
    const known = ticks.guests + ticks.replicas + ticks.client + ticks.bench
    ticks.other = Math.max(0, hostBusyTicks - known)
    const cores = Object.fromEntries(
      CPU_CATEGORIES.map((c) => [c, ticks[c] / TICKS_PER_S / seconds]),
    ) as Record<CpuCategory, number>
    return { seconds, cores, hostBusyCores: hostBusyTicks / TICKS_PER_S / seconds, hostCores: this.cores }
  }
}
