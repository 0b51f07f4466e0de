// Why do primary and backup QEMU guests diverge? Boots one template guest per variant (kernel
// command line / QEMU options), pauses it, and for every trial clones it twice (RAM copy + device
// state into -incoming standbys: both clones start byte-identical, like right after a full sync).
// Inbound frames from clone A's user-network backend (slirp, reached through hostfwd) are injected
// into BOTH guests in the same order through the filter-redirectors; A's outputs go back to slirp,
// B's are dropped (the backup's outputs). A workload of N redis SETs runs, both wait `wait` ms,
// pause, and their RAM files are compared with the template: union of dirty pages, identical share,
// divergent pages by guest-physical MiB and region, and how many bytes differ inside each.
//
//   cd bench && node --import tsx src/qemu/divergence.ts [--variants base,icount] [--waits 0,500,3000]
//        [--sets 2000] [--reps 1] [--json out.json] [--samples 4] [--gate off|on|both]
//
// `--gate on` puts @plover/qemu's TcpAckGate (as QemuVm uses it) in front of the backup; `both`
// alternates off/on for every wait within one run (same pair, same host load).
//
// Variants are defined in VARIANTS below. Needs @plover/qemu built and the guest image.
import { closeSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { connect, createServer, type Socket } from 'node:net'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import {
  exportDeviceState,
  FrameChannel,
  findGuestImage,
  GUEST_READY_MARKER,
  guestBoot,
  importDeviceState,
  launch,
  type QemuProcess,
  standbyConfig,
  TcpAckGate,
  type VmConfig,
} from '@plover/qemu'

const PAGE = 4096
const MIB = 1 << 20

interface Variant {
  /** Extra kernel parameters (after the defaults). */
  readonly append: string
  /** Extra QEMU arguments (primary and standby alike). */
  readonly qemu: readonly string[]
  readonly note: string
  /** virtio-net guest announce after migration (launcher default since this study: off). */
  readonly announce?: boolean
}

// `nokaslr loglevel=7` in every variant: the kernel sits at 16 MiB physical and prints its section
// sizes ("Memory: … kernel code, … rwdata, …") so divergent pages can be attributed.
const DIAG = 'nokaslr loglevel=7'
const VARIANTS: Record<string, Variant> = {
  announce: {
    append: '',
    qemu: [],
    announce: true,
    note: 'as the example booted before this study: guest announce on (plus nokaslr loglevel=7)',
  },
  base: { append: '', qemu: [], note: 'launcher defaults (guest announce off) plus nokaslr loglevel=7' },
  quiet: {
    append: 'nmi_watchdog=0 nosoftlockup audit=0 mitigations=off',
    qemu: [],
    note: 'fewer periodic kernel activities',
  },
  nohzoff: { append: 'nohz=off', qemu: [], note: 'periodic tick even when idle' },
  tscclk: { append: 'clocksource=tsc tsc=reliable', qemu: [], note: 'TSC clocksource' },
  jiffies: { append: 'clocksource=jiffies highres=off', qemu: [], note: 'jiffies clocksource, no hrtimers' },
  icount: { append: '', qemu: ['-icount', 'shift=auto'], note: '-icount shift=auto (sleep=on)' },
  icount0: { append: '', qemu: ['-icount', 'shift=0,sleep=off'], note: '-icount shift=0,sleep=off' },
  icount3: { append: '', qemu: ['-icount', 'shift=3,sleep=on'], note: '-icount shift=3' },
  best: {
    append: 'plover.redis.hz=1 plover.redis.jemalloc-bg-thread=no plover.redis.activerehashing=no',
    qemu: [],
    note: 'launcher defaults + redis hz 1, no jemalloc bg thread, no active rehashing',
  },
  rtcvm: { append: '', qemu: ['-rtc', 'clock=vm'], note: '-rtc clock=vm' },
  tsoff: { append: 'sysctl.net.ipv4.tcp_timestamps=0', qemu: [], note: 'no TCP timestamps in the guest' },
  redis: {
    append: 'plover.redis.hz=1 plover.redis.jemalloc-bg-thread=no plover.redis.activerehashing=no',
    qemu: [],
    note: 'redis hz 1, no jemalloc background thread, no active rehashing (image v3)',
  },
  combo: {
    append:
      'sysctl.net.ipv4.tcp_timestamps=0 plover.redis.hz=1 plover.redis.jemalloc-bg-thread=no plover.redis.activerehashing=no clocksource=jiffies highres=off nmi_watchdog=0 nosoftlockup',
    qemu: [],
    note: 'tsoff + redis + jiffies + no watchdogs',
  },
}

const { values } = parseArgs({
  options: {
    variants: { type: 'string', default: 'base' },
    waits: { type: 'string', default: '0,500,3000' },
    sets: { type: 'string', default: '2000' },
    reps: { type: 'string', default: '1' },
    samples: { type: 'string', default: '4' },
    memory: { type: 'string', default: '128' },
    json: { type: 'string' },
    gate: { type: 'string', default: 'off' },
  },
})
const memoryMiB = Number(values.memory)
const ramBytes = memoryMiB * MIB
const pageCount = ramBytes / PAGE
const waits = values.waits.split(',').map(Number)
const sets = Number(values.sets)
const reps = Number(values.reps)
const samples = Number(values.samples)

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as { port: number }
  await new Promise((r) => server.close(r))
  return port
}

function readFileInto(path: string, buf: Buffer): void {
  const fd = openSync(path, 'r')
  try {
    for (let pos = 0; pos < buf.byteLength; ) {
      const n = readSync(fd, buf, pos, Math.min(16 * MIB, buf.byteLength - pos), pos)
      if (n === 0) throw new Error(`short read of ${path}`)
      pos += n
    }
  } finally {
    closeSync(fd)
  }
}

function writeFileFrom(path: string, buf: Buffer): void {
  const fd = openSync(path, 'r+')
  try {
    for (let pos = 0; pos < buf.byteLength; pos += 16 * MIB)
      writeSync(fd, buf, pos, Math.min(16 * MIB, buf.byteLength - pos), pos)
  } finally {
    closeSync(fd)
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface KernelLayout {
  readonly start: number
  readonly codeEnd: number
  readonly end: number
  readonly line: string
}

/** Kernel image range from the boot log (nokaslr: physical 16 MiB; sections in link order). */
function kernelLayout(serial: string): KernelLayout | undefined {
  const m = /Memory: .*\((\d+)K kernel code, (\d+)K rwdata, (\d+)K rodata, (\d+)K init, (\d+)K bss/.exec(
    serial,
  )
  if (!m) return undefined
  const [code, rw, ro, init, bss] = m.slice(1, 6).map((k) => Number(k) * 1024) as [
    number,
    number,
    number,
    number,
    number,
  ]
  const start = 16 * MIB
  // text, then rodata, data, init, bss, each 2 MiB aligned at most: allow 2 MiB slack per section.
  return { start, codeEnd: start + code, end: start + code + ro + rw + init + bss + 8 * MIB, line: m[0] }
}

interface Template {
  readonly variant: string
  readonly config: VmConfig
  /** The RAM both guests had at the last sync (the dirty baseline). */
  readonly ram: Buffer
  readonly layout: KernelLayout | undefined
}

/** TCP fields of an Ethernet/IPv4 frame, or undefined. */
function tcpOf(
  f: Buffer,
): { sport: number; dport: number; seq: number; ack: number; flags: number; len: number } | undefined {
  if (f.length < 54 || f.readUInt16BE(12) !== 0x0800 || f[23] !== 6) return undefined
  const ihl = (f[14]! & 0x0f) * 4
  const totalLen = f.readUInt16BE(16)
  const t = 14 + ihl
  const doff = (f[t + 12]! >> 4) * 4
  const flags = f[t + 13]!
  const len = totalLen - ihl - doff + (flags & 0x03 ? 1 : 0) // SYN/FIN take a sequence number
  return {
    sport: f.readUInt16BE(t),
    dport: f.readUInt16BE(t + 2),
    seq: f.readUInt32BE(t + 4),
    ack: f.readUInt32BE(t + 8),
    flags,
    len,
  }
}

/** Coarse kind of a guest frame, for the output comparison. */
function frameKind(f: Buffer): string {
  const type = f.length >= 14 ? f.readUInt16BE(12) : 0
  if (type === 0x0806) return 'arp'
  if (type === 0x86dd) return 'ipv6'
  const t = tcpOf(f)
  if (!t) return type === 0x0800 ? `ip${f[23]}` : `eth${type.toString(16)}`
  const names = ['fin', 'syn', 'rst', 'psh', 'ack']
  const fl = names.filter((_, i) => t.flags & (1 << i)).join('')
  return `tcp:${fl}${t.len > 0 && !(t.flags & 3) ? '+data' : ''}`
}

const GATE_TIMEOUT_MS = 2000

/**
 * A primary (A, user networking with hostfwd, never replaced) and a backup (B, replaced by a fresh
 * -incoming standby at every sync, like QemuVm does), plus one persistent client TCP connection
 * opened before the first sync: both guests then hold the same established connection, as in the
 * example (a connection opened inside an epoch cannot work on the backup: its SYN-ACK carries a
 * clock-derived ISN that the client never sees).
 */
class Pair {
  a!: QemuProcess
  b!: QemuProcess
  fa!: FrameChannel
  fb!: FrameChannel | undefined
  port = 0
  paused = true
  pending: Buffer[] = []
  framesIn = 0
  outA = 0
  outB = 0
  kindsA: Record<string, number> = {}
  kindsB: Record<string, number> = {}
  chain = Promise.resolve()
  syncs = 0
  bootMs = 0
  readonly tmpl: Template
  readonly bRam: string
  socket!: Socket
  replies = 0
  /**
   * What each guest has sent per TCP flow (@plover/qemu's TcpAckGate, as QemuVm uses it): A's
   * only observes (its ACKs never run ahead: the client acks what A sent), B's holds inbound
   * segments acknowledging data B has not sent yet. At a sync B's copies A's flows (no output
   * commit here: the client may already ack bytes A sent after the cut).
   */
  gateA = new TcpAckGate({ timeoutMs: GATE_TIMEOUT_MS })
  gateB = new TcpAckGate({ timeoutMs: GATE_TIMEOUT_MS, canHold: () => !this.paused })
  /** Frames given to B's gate and not yet to B. */
  pendingB = 0
  gated = 0
  gateTimeouts = 0
  gate = values.gate === 'on'
  constructor(
    readonly variant: string,
    readonly v: Variant,
  ) {
    const image = findGuestImage()
    if (!image) throw new Error('no guest image: node packages/qemu/dist/guest/cli.js build')
    const boot = guestBoot(image, {
      ip: '10.0.2.15/24',
      gateway: '10.0.2.2',
      extra: `${DIAG} ${v.append}`.trim(),
    })
    const config: VmConfig = {
      name: `div-${variant}-${process.pid}`,
      boot,
      memoryMiB,
      cpus: 1,
      nic: { kind: 'user', redirectors: true, guestAnnounce: v.announce ?? false },
      extraArgs: v.qemu,
    }
    this.tmpl = { variant, config, ram: Buffer.alloc(ramBytes), layout: undefined }
    this.bRam = `/dev/shm/plover-${config.name}-b.ram`
  }

  async start(): Promise<void> {
    this.port = await freePort()
    const cfg = this.tmpl.config
    const t0 = performance.now()
    this.a = await launch({
      ...cfg,
      nic: {
        kind: 'user',
        redirectors: true,
        guestAnnounce: this.v.announce ?? false,
        hostForwards: [{ hostPort: this.port, guestPort: 6379 }],
      },
    })
    await this.a.waitForSerial(new RegExp(GUEST_READY_MARKER), 300_000)
    this.bootMs = performance.now() - t0
    this.fa = new FrameChannel({ redirectors: this.a.paths.redirectors!, qmp: this.a.qmp })
    await this.fa.open()
    this.fa.on('guest-frame', (f) => {
      this.outA++
      const k = frameKind(f)
      this.kindsA[k] = (this.kindsA[k] ?? 0) + 1
      this.gateA.observeOutbound(f)
      void this.fa.toNet(f)
    })
    this.fa.on('net-frame', (f) => {
      this.framesIn++
      if (this.paused) this.pending.push(f)
      else this.inject(f)
    })
    this.paused = false
    // The persistent client connection, opened before the first (full) sync.
    this.socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect(this.port, '127.0.0.1', () => resolve(s))
      s.once('error', reject)
    })
    this.socket.on('data', (d: Buffer) => {
      for (let i = d.indexOf('+OK'); i >= 0; i = d.indexOf('+OK', i + 1)) this.replies++
    })
    await this.setMany(10, 'warmup')
    await sleep(3000)
    const serial = readFileSync(this.a.paths.serialLog, 'utf8')
    ;(this.tmpl as { layout: KernelLayout | undefined }).layout = kernelLayout(serial)
    writeFileSync(this.bRam, '')
    await this.pauseBoth()
    readFileInto(this.a.paths.ramPath, bufA)
    await this.sync(bufA)
  }

  inject(f: Buffer): void {
    this.chain = this.chain.then(() => this.fa.toGuest(f))
    const fb = this.fb
    if (!fb) return
    // In order: admit resolves in call order, each frame goes to B right after its admission.
    // With the gate off the frame is still admitted (never held) to keep one code path.
    this.pendingB++
    const admitted = this.gate ? this.gateB.admit(f) : Promise.resolve()
    this.chainB = this.chainB.then(async () => {
      await admitted
      this.pendingB--
      await fb.toGuest(f)
    })
  }

  chainB = Promise.resolve()

  /** Waits until B has been given every frame (bounded by the gate timeout). */
  async drainB(): Promise<void> {
    const t0 = performance.now()
    while (this.pendingB > 0 && performance.now() - t0 < GATE_TIMEOUT_MS + 500) await sleep(5)
    await Promise.all([this.chain, this.chainB])
  }

  async setMany(n: number, tag: string): Promise<void> {
    const value = `PLOVERVAL:${tag}:${'v'.repeat(100)}`
    const target = this.replies + n
    let resp = ''
    for (let i = 0; i < n; i++) {
      const args = ['SET', `key:${i}`, `${value}:${i}`]
      resp += `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`
    }
    this.socket.write(resp)
    const t0 = performance.now()
    while (this.replies < target) {
      if (performance.now() - t0 > 60_000) throw new Error(`only ${this.replies - (target - n)}/${n} replies`)
      await sleep(5)
    }
  }

  async pauseBoth(): Promise<void> {
    await this.drainB()
    await Promise.all([this.a.qmp.stop(), this.b ? this.b.qmp.stop() : undefined])
    this.paused = true
    this.gateB.releaseAll()
  }

  async resumeBoth(): Promise<void> {
    await Promise.all([this.a.qmp.cont(), this.b.qmp.cont()])
    this.paused = false
    for (const f of this.pending.splice(0)) this.inject(f)
  }

  /** B := A (RAM given in `ram`, device state through a fresh standby); both stay paused. */
  async sync(ram: Buffer): Promise<void> {
    const name = `${this.tmpl.config.name}-b${this.syncs++}`
    const standby = await launch(standbyConfig(this.tmpl.config, { name, ramPath: this.bRam }))
    writeFileFrom(this.bRam, ram)
    const { state } = await exportDeviceState(this.a.qmp, { socketPath: join(this.a.paths.runDir, 'x.sock') })
    await importDeviceState(standby.qmp, state, { socketPath: join(standby.paths.runDir, 'in.sock') })
    const old = this.b
    const oldFb = this.fb
    this.b = standby
    this.fb = new FrameChannel({ redirectors: standby.paths.redirectors!, qmp: standby.qmp })
    await this.fb.open()
    this.fb.on('net-frame', () => {}) // B's own backend: ignored
    this.fb.on('guest-frame', (f) => {
      this.outB++
      const k = frameKind(f)
      this.kindsB[k] = (this.kindsB[k] ?? 0) + 1
      this.gateB.observeOutbound(f)
    }) // the backup's outputs are dropped (counted, and tracked for the gate)
    // At a sync B becomes A: same sent sequence numbers.
    this.gateB.reset(this.gateA)
    oldFb?.close()
    if (old) await old.stop()
    this.tmpl.ram.set(ram)
  }

  async close(): Promise<void> {
    this.socket?.destroy()
    this.fa?.close()
    this.fb?.close()
    await this.a?.stop({ removeRam: true })
    await this.b?.stop({ removeRam: true })
    rmSync(this.bRam, { force: true })
  }
}

interface TrialResult {
  variant: string
  workload: string
  waitMs: number
  dirtyA: number
  dirtyB: number
  union: number
  identical: number
  identicalPct: number
  divergent: number
  oneSided: number
  bothSided: number
  byRegion: Record<string, number>
  byMiB: Record<string, number>
  diffBytes: Record<string, number>
  zeroOnOneSide: number
  withValue: number
  framesIn: number
  valuesA?: number
  valuesB?: number
  outA?: number
  outB?: number
  gate?: boolean
  gated?: number
  gateTimeouts?: number
  samples: string[]
  loadavg: number
}

const bufA = Buffer.allocUnsafe(ramBytes)
const bufB = Buffer.allocUnsafe(ramBytes)
const ZERO = Buffer.alloc(PAGE)
const VALUE_MARK = Buffer.from('PLOVERVAL')

function region(t: Template, addr: number): string {
  const l = t.layout
  if (addr < MIB) return 'low 1 MiB'
  if (l && addr >= l.start && addr < l.codeEnd) return 'kernel text'
  if (l && addr >= l.codeEnd && addr < l.end) return 'kernel ro/data/bss'
  if (l && addr >= l.end) return 'above kernel (page allocator)'
  return 'below kernel (page allocator)'
}

function diffPage(a: Buffer, b: Buffer): { count: number; spans: string } {
  let count = 0
  const spans: string[] = []
  let i = 0
  while (i < PAGE) {
    if (a[i] === b[i]) {
      i++
      continue
    }
    let j = i
    while (j < PAGE && (a[j] !== b[j] || (j + 1 < PAGE && a[j + 1] !== b[j + 1]))) j++
    count += j - i
    if (spans.length < 6) {
      const len = Math.min(j - i, 16)
      spans.push(
        `@${i.toString(16)}+${j - i}: ${a.subarray(i, i + len).toString('hex')} vs ${b.subarray(i, i + len).toString('hex')}`,
      )
    }
    i = j
  }
  return { count, spans: spans.join('; ') }
}

function classify(t: Template, workload: string, waitMs: number, framesIn: number): TrialResult {
  let dirtyA = 0
  let dirtyB = 0
  let union = 0
  let identical = 0
  let oneSided = 0
  let zeroOnOneSide = 0
  let withValue = 0
  const byRegion: Record<string, number> = {}
  const byMiB: Record<string, number> = {}
  const diffBytes: Record<string, number> = {}
  const sampled: { page: number; count: number; spans: string; region: string }[] = []
  for (let p = 0; p < pageCount; p++) {
    const off = p * PAGE
    const a = bufA.subarray(off, off + PAGE)
    const b = bufB.subarray(off, off + PAGE)
    const base = t.ram.subarray(off, off + PAGE)
    const dA = !a.equals(base)
    const dB = !b.equals(base)
    if (dA) dirtyA++
    if (dB) dirtyB++
    if (!dA && !dB) continue
    union++
    if (a.equals(b)) {
      identical++
      continue
    }
    if (dA !== dB) oneSided++
    const reg = region(t, off)
    byRegion[reg] = (byRegion[reg] ?? 0) + 1
    const mib = String(Math.floor(off / MIB))
    byMiB[mib] = (byMiB[mib] ?? 0) + 1
    if (a.equals(ZERO) || b.equals(ZERO)) zeroOnOneSide++
    if (a.includes(VALUE_MARK) || b.includes(VALUE_MARK)) withValue++
    const d = diffPage(a, b)
    const bucket =
      d.count <= 8
        ? '1-8'
        : d.count <= 64
          ? '9-64'
          : d.count <= 512
            ? '65-512'
            : d.count <= 2048
              ? '513-2048'
              : '2049-4096'
    diffBytes[bucket] = (diffBytes[bucket] ?? 0) + 1
    sampled.push({ page: p, count: d.count, spans: d.spans, region: reg })
  }
  // Samples: spread over the divergent pages (fewest differing bytes first within each region).
  const pick: string[] = []
  const byReg = new Map<string, typeof sampled>()
  for (const s of sampled) byReg.set(s.region, [...(byReg.get(s.region) ?? []), s])
  for (const [reg, list] of byReg) {
    list.sort((x, y) => x.count - y.count)
    const step = Math.max(1, Math.floor(list.length / samples))
    for (let i = 0; i < list.length && pick.length < samples * byReg.size; i += step) {
      const s = list[i]!
      pick.push(`${reg} 0x${(s.page * PAGE).toString(16)} ${s.count} B: ${s.spans}`)
      if (pick.filter((x) => x.startsWith(reg)).length >= samples) break
    }
  }
  const divergent = union - identical
  return {
    variant: t.variant,
    workload,
    waitMs,
    dirtyA,
    dirtyB,
    union,
    identical,
    identicalPct: union ? (100 * identical) / union : 100,
    divergent,
    oneSided,
    bothSided: divergent - oneSided,
    byRegion,
    byMiB,
    diffBytes,
    zeroOnOneSide,
    withValue,
    framesIn,
    samples: pick,
    loadavg: loadavg()[0]!,
  }
}

async function epoch(p: Pair, workload: 'idle' | 'sets', waitMs: number, seq: number): Promise<TrialResult> {
  p.framesIn = 0
  p.outA = 0
  p.outB = 0
  p.kindsA = {}
  p.kindsB = {}
  await p.resumeBoth()
  const t0 = performance.now()
  if (workload === 'sets') await p.setMany(sets, `e${seq}`)
  const workMs = performance.now() - t0
  await sleep(waitMs)
  const framesIn = p.framesIn
  await p.pauseBoth()
  readFileInto(p.a.paths.ramPath, bufA)
  readFileInto(p.bRam, bufB)
  const r = classify(p.tmpl, workload, waitMs, framesIn)
  const tag = Buffer.from(`PLOVERVAL:e${seq}:`)
  const count = (buf: Buffer) => {
    let n = 0
    for (let i = buf.indexOf(tag); i >= 0; i = buf.indexOf(tag, i + 1)) n++
    return n
  }
  r.valuesA = count(bufA)
  r.valuesB = count(bufB)
  r.outA = p.outA
  r.outB = p.outB
  r.gate = p.gate
  const gc = p.gateB.counters
  r.gated = gc.held - p.gated
  r.gateTimeouts = gc.releasedByTimeout - p.gateTimeouts
  console.log(
    `  values of this epoch in RAM: A ${r.valuesA} B ${r.valuesB}; frames out A ${p.outA} B ${p.outB}; gate ${p.gate ? 'on' : 'off'}: held ${r.gated} timeouts ${r.gateTimeouts} max hold ${gc.maxHoldMs.toFixed(0)} ms; ` +
      `out A ${JSON.stringify(p.kindsA)} B ${JSON.stringify(p.kindsB)}`,
  )
  p.gated = gc.held
  p.gateTimeouts = gc.releasedByTimeout
  console.log(
    `${p.variant.padEnd(8)} ${workload.padEnd(5)} wait ${String(waitMs).padStart(5)} ms (work ${workMs.toFixed(0)} ms, ${framesIn} frames in): ` +
      `dirty A ${r.dirtyA} B ${r.dirtyB} union ${r.union} identical ${r.identical} (${r.identicalPct.toFixed(1)} %) ` +
      `divergent ${r.divergent} [one-sided ${r.oneSided}, zero-on-one-side ${r.zeroOnOneSide}, with values ${r.withValue}] ` +
      `regions ${JSON.stringify(r.byRegion)} diffbytes ${JSON.stringify(r.diffBytes)} load ${r.loadavg.toFixed(1)}`,
  )
  await p.sync(bufA)
  return r
}

async function main(): Promise<void> {
  const results: TrialResult[] = []
  const meta: Record<string, unknown> = { date: new Date().toISOString(), memoryMiB, sets, waits, reps }
  const templates: Record<string, unknown> = {}
  for (const name of values.variants.split(',')) {
    const v = VARIANTS[name]
    if (!v) throw new Error(`unknown variant ${name}; known: ${Object.keys(VARIANTS).join(', ')}`)
    const p = new Pair(name, v)
    try {
      await p.start()
      templates[name] = { ...v, bootMs: Math.round(p.bootMs), layout: p.tmpl.layout }
      console.log(
        `# ${name}: ${v.note}; boot ${(p.bootMs / 1000).toFixed(1)} s; ${p.tmpl.layout?.line ?? 'no layout'}`,
      )
      let seq = 0
      for (let rep = 0; rep < reps; rep++) {
        const gates = values.gate === 'both' ? [false, true] : [values.gate === 'on']
        results.push(await epoch(p, 'idle', Math.max(...waits), seq++))
        for (const w of waits) {
          for (const g of gates) {
            p.gate = g
            results.push(await epoch(p, 'sets', w, seq++))
          }
        }
      }
    } finally {
      await p.close()
    }
  }
  for (const r of results) {
    console.log(
      `\n## ${r.variant} ${r.workload} wait ${r.waitMs} gate ${r.gate ? 'on' : 'off'}: ${r.identicalPct.toFixed(1)} % identical`,
    )
    const top = Object.entries(r.byMiB)
      .sort((x, y) => y[1] - x[1])
      .slice(0, 12)
      .map(([m, n]) => `${m}MiB:${n}`)
    console.log(`  divergent by MiB (top): ${top.join(' ')}`)
    for (const s of r.samples) console.log(`  ${s}`)
  }
  if (values.json) writeFileSync(values.json, `${JSON.stringify({ meta, templates, results }, null, 2)}\n`)
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err)
    process.exit(1)
  },
)
