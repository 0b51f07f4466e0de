// Polling waits for the demo's phases and tests: a replica process is observed over HTTP, so
// "wait until" is a poll with a deadline that names what it waited for.
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Resolves with `f`'s first value that is not undefined/false; throws after `ms`, naming `what`. */
export async function until<T>(
  what: string,
  ms: number,
  f: () => Promise<T | undefined | false>,
): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await f()
    if (v !== undefined && v !== false) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(25)
  }
}
