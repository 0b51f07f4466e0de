export const PACKAGE = '@plover/qemu'

// Guest image
export {
  type BuildGuestOptions,
  type BuildGuestResult,
  buildGuestImage,
  ensureGuestImage,
} from './guest/build-guest.js'
export { defaultGuestCacheDir, findRepoRoot, GUEST_DIR_ENV } from './guest/cache-dir.js'
export { findGuestImage, type GuestImage, type GuestManifest, openGuestImage } from './guest/guest-image.js'
export {
  GUEST_BUILDER_VERSION,
  type GuestInputs,
  guestInputsKey,
  resolveGuestInputs,
} from './guest/guest-inputs.js'
export {
  GUEST_MODULES,
  GUEST_READY_MARKER,
  GUEST_REDIS_EXITED_MARKER,
  GUEST_REDIS_PORT,
  guestInitScript,
} from './guest/init-script.js'

// Launcher
export { buildQemuCommandLine, type QemuCommandLine, type VmPaths, vmPaths } from './launch/command-line.js'
export { type GuestNetworkSettings, guestBoot, guestKernelAppend } from './launch/guest-boot.js'
export {
  type LaunchOptions,
  launch,
  type QemuExit,
  QemuExitedError,
  QemuLaunchError,
  QemuProcess,
  type QemuProcessEvents,
  type StopOptions,
} from './launch/qemu-process.js'
export {
  type RedirectorSpec,
  redirectorChardevArg,
  redirectorObjectAddArgs,
  redirectorObjectArg,
  redirectorSpecs,
} from './launch/redirectors.js'
export { CommandError, type CommandResult, type RunCommandOptions, runCommand } from './launch/run-command.js'
export { SerialLog, SerialTimeoutError } from './launch/serial-log.js'
export { type StandbyOverrides, standbyConfig } from './launch/standby.js'
export {
  type BootConfig,
  DEFAULT_GUEST_MAC,
  DEFAULT_MEMORY_MIB,
  NETDEV_ID,
  type NicConfig,
  RAM_BACKEND_ID,
  type RedirectorName,
  type VmConfig,
} from './launch/vm-config.js'
// Test network (bridge, taps, client namespace)
export { DEFAULT_NET_PREFIX } from './net/names.js'
export { TestNetwork, type TestNetworkOptions } from './net/test-network.js'
// QMP client
export { type ExecuteOptions, QmpClient, type QmpClientEvents, type QmpConnectOptions } from './qmp/client.js'
export { type DecodeResult, QmpDecoder } from './qmp/decoder.js'
export { QmpDisconnectedError, QmpError, QmpProtocolError, QmpTimeoutError } from './qmp/errors.js'
export type * from './qmp/types.js'
export type { QmpMessage } from './qmp/wire.js'
// Test helpers (no tap dependency)
export {
  type BootTestGuestOptions,
  bootTestGuest,
  TEST_BOOT_TIMEOUT_MS,
  type TeardownTest,
} from './testing/boot-test-guest.js'
export {
  type QemuTestEnv,
  qemuUnavailableReason,
  REQUIRE_QEMU_ENV,
  requireQemu,
  type TestLike,
} from './testing/require-qemu.js'
export { uniqueVmName } from './testing/unique-name.js'
