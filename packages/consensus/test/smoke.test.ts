import t from 'tap'
import { PACKAGE } from '../src/index.js'

t.equal(PACKAGE, '@plover/consensus')
