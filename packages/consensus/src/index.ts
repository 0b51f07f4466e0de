export const PACKAGE = '@plover/consensus'
