import { GUEST_READY_MARKER } from '../guest/init-script.js'
import { guestBoot } from '../launch/guest-boot.js'
import { launch, type QemuProcess } from '../launch/qemu-process.js'
import type { NicConfig, VmConfig } from '../launch/vm-config.js'
import type { QemuTestEnv } from './require-qemu.js'
import { uniqueVmName } from './unique-name.js'

/** The subset of a tap Test used here. */
export interface TeardownTest {
  teardown(fn: () => unknown): void
}

export interface BootTestGuestOptions {
  readonly name?: string
  readonly nic?: NicConfig
  /** eth0 address, e.g. `10.77.0.10/24` (default for user networking: `10.0.2.15/24`). */
  readonly ip?: string
  readonly gateway?: string
  readonly memoryMiB?: number
  /** Wait for the guest's ready marker (default true). */
  readonly waitReady?: boolean
  /** Boot budget (default 120 s: TCG boots in ~8–11 s, much slower on a loaded machine). */
  readonly readyTimeoutMs?: number
  /** Everything else of VmConfig. */
  readonly config?: Partial<VmConfig>
}

/** Default boot budget for tests. */
export const TEST_BOOT_TIMEOUT_MS = 120_000

/**
 * Launches the test guest, registers `stop({removeRam: true})` as teardown (runs even when the test
 * fails), and waits for `PLOVER-GUEST-READY` on the serial console.
 */
export async function bootTestGuest(
  t: TeardownTest,
  env: QemuTestEnv,
  options: BootTestGuestOptions = {},
): Promise<QemuProcess> {
  const nic = options.nic ?? { kind: 'none' }
  const ip = options.ip ?? (nic.kind === 'user' ? '10.0.2.15/24' : undefined)
  const gateway = options.gateway ?? (nic.kind === 'user' ? '10.0.2.2' : undefined)
  const config: VmConfig = {
    name: options.name ?? uniqueVmName('guest'),
    boot: guestBoot(env.image, { ...(ip ? { ip } : {}), ...(gateway ? { gateway } : {}) }),
    memoryMiB: options.memoryMiB ?? 256,
    cpus: 1,
    nic,
    qemuBinary: env.qemuBinary,
    ...options.config,
  }
  const vm = await launch(config)
  t.teardown(() => vm.stop({ removeRam: true }))
  if (options.waitReady ?? true) {
    await vm.waitForSerial(new RegExp(GUEST_READY_MARKER), options.readyTimeoutMs ?? TEST_BOOT_TIMEOUT_MS)
  }
  return vm
}
