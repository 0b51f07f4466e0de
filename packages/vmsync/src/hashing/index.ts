export { hashPage, hashPagesSync } from './hash-pages.js'
export type { FileReads } from './mapped-memory.js'
export { HASH_BYTES } from './messages.js'
export {
  DEFAULT_SCAN_BLOCK_PAGES,
  PageHasher,
  type PageHasherOptions,
  type ScanVector,
} from './page-hasher.js'
