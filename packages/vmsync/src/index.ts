export const PACKAGE = '@plover/vmsync'
