// Typed errors of guest-memory access, so callers can tell a protocol bug (writing into a running
// guest) from an I/O failure.

/** A write was attempted while the VM was not paused: it would race with the guest's own writes. */
export class VmNotPausedError extends Error {
  override readonly name = 'VmNotPausedError'
  constructor(operation: string) {
    super(`${operation} requires the VM to be paused`)
  }
}

/** A page index or buffer size does not fit the guest's RAM. */
export class PageRangeError extends Error {
  override readonly name = 'PageRangeError'
}
