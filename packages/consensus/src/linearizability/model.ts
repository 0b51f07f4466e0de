// What the checker needs to know about a sequential object (Porcupine's Model).

/** One completed (or pending: ret = Infinity) operation of a concurrent history. */
export interface Operation<I, O> {
  client: number
  input: I
  output: O
  /** Invocation and response timestamps; unique and totally ordered across the history. */
  call: number
  ret: number
}

export interface Model<S, I, O> {
  init(): S
  /** Can `input` with result `output` happen in `state`? If so, the state after it. */
  step(state: S, input: I, output: O): { ok: boolean; state: S }
  /** Canonical string for memoization: equal keys ⇔ equal states. */
  key(state: S): string
  /** Independent sub-histories (e.g. per key) that can be checked separately. */
  partition?(ops: readonly Operation<I, O>[]): Operation<I, O>[][]
  describe?(op: Operation<I, O>): string
}
