// @plover/qemu/testing: helpers for tests that boot QEMU (no tap dependency). Kept out of the main
// entry so runtime code does not pull them in.
export {
  type BootTestGuestOptions,
  bootTestGuest,
  TEST_BOOT_TIMEOUT_MS,
  type TeardownTest,
} from './boot-test-guest.js'
export { FakeQmpServer, type ReceivedCommand } from './fake-qmp-server.js'
export {
  type QemuTestEnv,
  qemuUnavailableReason,
  REQUIRE_QEMU_ENV,
  requireQemu,
  type TestLike,
} from './require-qemu.js'
export { uniqueVmName } from './unique-name.js'
