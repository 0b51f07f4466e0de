/** Identifies one of the four filter-redirectors (see DESIGN §2 for the direction names). */
export type RedirectorName = 'inOut' | 'inIn' | 'outIn' | 'outOut'

/**
 * The NIC of a replica VM. Frontend is always virtio-net-pci with a fixed MAC (primary and backup
 * share it). `redirectors` adds the four filter-redirector chardevs that route frames through Node.
 */
export type NicConfig =
  | {
      readonly kind: 'tap'
      /** An existing tap device (see `TestNetwork.addTap`); QEMU does not run scripts. */
      readonly ifname: string
      readonly mac?: string
      readonly redirectors?: boolean
      /**
       * Adds `vnet_hdr_support=on` to the redirectors (frames then carry a vnet header length) and
       * leaves the tap's vnet headers at QEMU's default. Default false: the tap gets
       * `vnet_hdr=off`, so redirector frames are plain Ethernet.
       */
      readonly vnetHdr?: boolean
      /**
       * virtio-net's guest announce (VIRTIO_NET_F_GUEST_ANNOUNCE). Default false
       * (`guest_announce=off`): after every incoming migration QEMU would otherwise interrupt the
       * guest five times over ~1.3 s to send gratuitous ARP, IPv6 NA and MLD reports itself — work
       * only a freshly loaded backup does, which made its memory diverge from the primary's every
       * sync (docs/divergence.md). QEMU's own RARP announce is unaffected. Guest-visible: a primary
       * and its standbys must agree (standbyConfig copies it).
       */
      readonly guestAnnounce?: boolean
    }
  | {
      /** QEMU user networking: quick tests only (client TCP state lives in this QEMU; backlog 1). */
      readonly kind: 'user'
      readonly mac?: string
      readonly hostForwards?: readonly { readonly hostPort: number; readonly guestPort: number }[]
      readonly redirectors?: boolean
      readonly vnetHdr?: boolean
      /** See the tap variant. Default false. */
      readonly guestAnnounce?: boolean
    }
  | { readonly kind: 'none' }

/** How to boot: `guestBoot(image, …)` fills this from a built guest image. */
export interface BootConfig {
  readonly kernel: string
  readonly initrd: string
  readonly append: string
}

/** Typed description of one QEMU replica process. */
export interface VmConfig {
  /** Names files and sockets; letters, digits, `_.-` only. */
  readonly name: string
  readonly boot: BootConfig
  /** Guest RAM in MiB (default 256). */
  readonly memoryMiB?: number
  /** vCPUs (default 1). */
  readonly cpus?: number
  /** Guest RAM file (default `/dev/shm/plover-<name>.ram`); mapped `share=on` so Node can read it. */
  readonly ramPath?: string
  /** Per-VM directory for QMP/redirector sockets and the serial log (default `$TMPDIR/plover-qemu/<name>`). */
  readonly runDir?: string
  /** Serial console log (default `<runDir>/serial.log`). */
  readonly serialLogPath?: string
  readonly nic?: NicConfig
  /** `'defer'` makes a standby: QEMU waits for `migrate-incoming` instead of booting. */
  readonly incoming?: 'defer'
  /** `tcg` (default) or `kvm`. Primary and standby must use the same. */
  readonly accel?: 'tcg' | 'kvm'
  /** Default `qemu-system-x86_64` from PATH. */
  readonly qemuBinary?: string
  /** Appended verbatim to the command line. */
  readonly extraArgs?: readonly string[]
}

export const DEFAULT_MEMORY_MIB = 256
/** Locally administered MAC shared by every replica's NIC (failover keeps the guest's identity). */
export const DEFAULT_GUEST_MAC = '52:54:00:77:00:10'
export const NETDEV_ID = 'net0'
export const RAM_BACKEND_ID = 'mem0'
