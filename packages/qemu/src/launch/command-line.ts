import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  type RedirectorSpec,
  redirectorChardevArg,
  redirectorObjectArg,
  redirectorSpecs,
} from './redirectors.js'
import {
  DEFAULT_GUEST_MAC,
  DEFAULT_MEMORY_MIB,
  NETDEV_ID,
  RAM_BACKEND_ID,
  type RedirectorName,
  type VmConfig,
} from './vm-config.js'

/** Host paths a VM uses. */
export interface VmPaths {
  readonly runDir: string
  readonly qmpSocket: string
  readonly serialLog: string
  readonly ramPath: string
  /** Present when the NIC has redirectors. */
  readonly redirectors?: Readonly<Record<RedirectorName, RedirectorSpec>>
}

export interface QemuCommandLine {
  readonly binary: string
  readonly args: readonly string[]
  readonly paths: VmPaths
}

/** Unix socket paths longer than this fail in bind(2) (sun_path is 108 bytes). */
const MAX_SOCKET_PATH = 107

export function vmPaths(config: VmConfig): VmPaths {
  if (!/^[A-Za-z0-9_.-]+$/.test(config.name))
    throw new Error(`invalid VM name ${JSON.stringify(config.name)}`)
  const runDir = config.runDir ?? join(tmpdir(), 'plover-qemu', config.name)
  const nic = config.nic
  const withRedirectors = nic !== undefined && nic.kind !== 'none' && nic.redirectors === true
  const specs = withRedirectors ? redirectorSpecs(runDir, nic.vnetHdr ?? false) : undefined
  const paths: VmPaths = {
    runDir,
    qmpSocket: join(runDir, 'qmp.sock'),
    serialLog: config.serialLogPath ?? join(runDir, 'serial.log'),
    ramPath: config.ramPath ?? `/dev/shm/plover-${config.name}.ram`,
    ...(specs
      ? {
          redirectors: Object.fromEntries(specs.map((s) => [s.name, s])) as Record<
            RedirectorName,
            RedirectorSpec
          >,
        }
      : {}),
  }
  for (const p of [paths.qmpSocket, ...(specs ?? []).map((s) => s.socketPath)]) {
    if (Buffer.byteLength(p) > MAX_SOCKET_PATH) throw new Error(`socket path too long for bind(2): ${p}`)
  }
  return paths
}

function nicArgs(config: VmConfig, paths: VmPaths): string[] {
  const nic = config.nic ?? { kind: 'none' }
  if (nic.kind === 'none') return []
  const args: string[] = []
  if (nic.kind === 'tap') {
    // WHY vnet_hdr=off: with the tap's default (vnet headers when the kernel offers them),
    // virtio-net puts a 12-byte virtio_net_hdr in front of every frame in the filter chain, so
    // redirector frames would not be plain Ethernet. `vnetHdr: true` keeps QEMU's default.
    const vnet = nic.vnetHdr ? '' : ',vnet_hdr=off'
    args.push('-netdev', `tap,id=${NETDEV_ID},ifname=${nic.ifname},script=no,downscript=no${vnet}`)
  } else {
    const fwd = (nic.hostForwards ?? [])
      .map((f) => `,hostfwd=tcp:127.0.0.1:${f.hostPort}-:${f.guestPort}`)
      .join('')
    args.push('-netdev', `user,id=${NETDEV_ID}${fwd}`)
  }
  // WHY guest_announce=off by default: see NicConfig.guestAnnounce (backup divergence per sync).
  const announce = nic.guestAnnounce ? '' : ',guest_announce=off'
  args.push(
    '-device',
    `virtio-net-pci,netdev=${NETDEV_ID},mac=${nic.mac ?? DEFAULT_GUEST_MAC},id=nic0${announce}`,
  )
  if (paths.redirectors) {
    const specs = Object.values(paths.redirectors)
    // WHY two loops: every chardev must exist before the first filter that names it.
    for (const s of specs) args.push('-chardev', redirectorChardevArg(s))
    for (const s of specs) args.push('-object', redirectorObjectArg(s, NETDEV_ID))
  }
  return args
}

/**
 * Builds the QEMU command line of a replica. Everything guest-visible derives from the config's
 * guest-visible fields only (memory, cpus, NIC model/MAC/redirectors), so a primary and its
 * standby (`standbyConfig`) get the identical device set that migration requires.
 */
export function buildQemuCommandLine(config: VmConfig): QemuCommandLine {
  const paths = vmPaths(config)
  const mem = config.memoryMiB ?? DEFAULT_MEMORY_MIB
  // WHY not auto-detect KVM: a /dev/kvm that opens fine can still hang the guest (seen here).
  const accel = config.accel ?? 'tcg'
  const args = [
    '-name',
    `${config.name},process=plover-${config.name}`,
    '-machine',
    `q35,memory-backend=${RAM_BACKEND_ID}`,
    '-accel',
    accel,
    '-object',
    `memory-backend-file,id=${RAM_BACKEND_ID},size=${mem}M,mem-path=${paths.ramPath},share=on`,
    '-m',
    `${mem}M`,
    '-smp',
    String(config.cpus ?? 1),
    '-nodefaults',
    '-vga',
    'none',
    '-display',
    'none',
    '-no-user-config',
    '-no-reboot',
    '-kernel',
    config.boot.kernel,
    '-initrd',
    config.boot.initrd,
    '-append',
    config.boot.append,
    '-qmp',
    `unix:${paths.qmpSocket},server=on,wait=off`,
    '-chardev',
    `file,id=serial0,path=${paths.serialLog}`,
    '-serial',
    'chardev:serial0',
    ...nicArgs(config, paths),
    ...(config.incoming ? ['-incoming', config.incoming] : []),
    ...(config.extraArgs ?? []),
  ]
  return { binary: config.qemuBinary ?? 'qemu-system-x86_64', args, paths }
}
