export const PACKAGE = '@plover/idle-monitor'
