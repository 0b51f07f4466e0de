// Dirty-page detection
export {
  diffDigests,
  HashScanTracker,
  type HashScanTrackerOptions,
  type PageHashing,
  type ScanStats,
} from './dirty/hash-scan-tracker.js'
export {
  collectSoftDirty,
  countPresent,
  countSoftDirty,
  decodePagemapEntry,
  PAGEMAP_ENTRY_BYTES,
  type PagemapEntry,
} from './dirty/pagemap.js'
export { type FileSegment, fileSegments, type MapsEntry, parseMaps } from './dirty/proc-maps.js'
export {
  type DirtyTrackerKind,
  type SelectedTracker,
  type SelectTrackerOptions,
  selectDirtyTracker,
  softDirtyCapability,
} from './dirty/select-tracker.js'
export { probeSoftDirty, type SoftDirtyProbeReport } from './dirty/soft-dirty-probe.js'
export { SoftDirtyTracker, type SoftDirtyTrackerOptions } from './dirty/soft-dirty-tracker.js'
// Frame channel (filter-redirector sockets)
export { encodeFrame, type FrameCodecOptions, FrameDecoder, MAX_FRAME_BYTES } from './frames/codec.js'
export { FrameChannelClosedError, FrameDecodeError } from './frames/errors.js'
export {
  FrameChannel,
  type FrameChannelCounters,
  type FrameChannelEvents,
  type FrameChannelOptions,
} from './frames/frame-channel.js'
export { placementOf, recreateRedirector } from './frames/recreate-redirector.js'
export { type LinkCounters, RedirectorLink, type RedirectorLinkOptions } from './frames/redirector-link.js'
// TCP ACK gate (a lagging backup must not see ACKs of data it has not sent yet)
export {
  parseTcpSegment,
  seqAfter,
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
  TcpAckGate,
  type TcpAckGateCounters,
  type TcpAckGateOptions,
  type TcpSegmentInfo,
} from './frames/tcp-ack-gate.js'
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
// Guest memory (RAM file)
export { PageRangeError, VmNotPausedError } from './memory/errors.js'
export { GuestMemory, type GuestMemoryOptions } from './memory/guest-memory.js'
// Device-state transfer (x-ignore-shared: a migration stream into a standby, or a snapshot loaded in place)
export {
  compareDeviceState,
  ramBlockAddrRanges,
  type StateDifference,
  sameDeviceState,
} from './migration/compare-state.js'
export {
  armIncoming,
  exportDeviceState,
  type ImportOptions,
  importDeviceState,
  migrateToStandby,
  type TransferOptions,
  type TransferStats,
} from './migration/device-state.js'
export { MigrationFailedError, type MigrationSide, MigrationTimeoutError } from './migration/errors.js'
export {
  isSnapshotState,
  loadSnapshotState,
  type SnapshotStateOptions,
  saveSnapshotState,
} from './migration/snapshot-state.js'
export {
  incomingSocketPath,
  type StandbyFactoryOptions,
  StandbyPool,
  type StandbyPoolEvents,
  type StandbyPoolOptions,
  standbyLauncher,
} from './migration/standby-pool.js'
// Test network (bridge, taps, client namespace)
export { DEFAULT_NET_PREFIX } from './net/names.js'
export { TestNetwork, type TestNetworkOptions } from './net/test-network.js'
// QMP client
export { type ExecuteOptions, QmpClient, type QmpClientEvents, type QmpConnectOptions } from './qmp/client.js'
export { type DecodeResult, QmpDecoder } from './qmp/decoder.js'
export { QmpDisconnectedError, QmpError, QmpProtocolError, QmpTimeoutError } from './qmp/errors.js'
export type * from './qmp/types.js'
export type { QmpMessage } from './qmp/wire.js'
// ReplicatedVm over QEMU
export { NoStandbyError, VmExitedError } from './vm/errors.js'
export { QemuVm, type QemuVmHostEvents, type QemuVmOptions } from './vm/qemu-vm.js'
