import {
  type Entry,
  EntryType,
  type HardState,
  MemberRole,
  type Message,
  MessageType,
  type Snapshot,
} from '../../src/core/types.js'
import { int, randomBytes } from './prng.js'

// Random valid values of the shared types, for round-trip and mutation fuzzing.

const bigish = (rnd: () => number) =>
  [0, 1, int(rnd, 300), int(rnd, 1 << 30), Number.MAX_SAFE_INTEGER][int(rnd, 5)]

export function genEntry(rnd: () => number, maxData = 64): Entry {
  return {
    term: bigish(rnd),
    index: bigish(rnd),
    type: int(rnd, EntryType.Unprotect + 1),
    data: randomBytes(rnd, int(rnd, maxData)),
  }
}

export function genHardState(rnd: () => number): HardState {
  return { term: bigish(rnd), vote: int(rnd, 10), commit: bigish(rnd) }
}

export function genSnapshot(rnd: () => number): Snapshot {
  const n = int(rnd, 6)
  const members = Array.from({ length: n }, (_, i) => ({ id: i + 1, role: int(rnd, MemberRole.Learner + 1) }))
  return {
    meta: { index: bigish(rnd), term: bigish(rnd), membership: { members } },
    data: randomBytes(rnd, int(rnd, 100)),
  }
}

export function genMessage(rnd: () => number): Message {
  const m: Message = {
    type: int(rnd, MessageType.CatchUp + 1),
    from: 1 + int(rnd, 5),
    to: 1 + int(rnd, 5),
    term: bigish(rnd),
    logIndex: bigish(rnd),
    logTerm: bigish(rnd),
    commit: bigish(rnd),
    entries: Array.from({ length: int(rnd, 5) }, () => genEntry(rnd)),
    reject: rnd() < 0.5,
    rejectHint: bigish(rnd),
    transfer: rnd() < 0.5,
  }
  return rnd() < 0.2 ? { ...m, snapshot: genSnapshot(rnd) } : m
}
