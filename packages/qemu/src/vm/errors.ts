// Typed errors of QemuVm's lifecycle.

/** The VM was closed or QEMU died: no further operation is possible. */
export class VmExitedError extends Error {
  override readonly name = 'VmExitedError'
}

/** importDeviceState needs a standby pool (a QEMU can load an incoming migration only once, at start). */
export class NoStandbyError extends Error {
  override readonly name = 'NoStandbyError'
}
