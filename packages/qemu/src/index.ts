export const PACKAGE = '@plover/qemu'
