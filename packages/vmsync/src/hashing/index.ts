export { hashPage, hashPagesSync } from './hash-pages.js'
export { HASH_BYTES } from './messages.js'
export { PageHasher, type PageHasherOptions } from './page-hasher.js'
