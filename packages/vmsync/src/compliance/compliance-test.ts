// What the compliance suites need of a test framework: a minimal structural subset of tap's
// `Test`, so the package has no runtime tap dependency and a suite's own tests can record
// failures with a test double.

export interface ComplianceTest {
  test(name: string, fn: (t: ComplianceTest) => Promise<void>): unknown
  ok(value: unknown, message: string): unknown
  equal(found: unknown, wanted: unknown, message: string): unknown
  same(found: unknown, wanted: unknown, message: string): unknown
  rejects(promise: Promise<unknown>, wanted: RegExp, message: string): unknown
  teardown(fn: () => unknown): unknown
  comment(...message: unknown[]): unknown
}

/**
 * The runner of a suite whose checks each need one fresh subject: every check is a subtest of
 * `t` with its own subject from `factory`, cleaned up afterwards whatever the check did.
 */
export function checkEach<S extends { cleanup(): Promise<void> }>(
  t: ComplianceTest,
  factory: () => Promise<S>,
): (name: string, body: (t: ComplianceTest, subject: S) => Promise<void>) => unknown {
  return (name, body) =>
    t.test(name, async (t) => {
      const subject = await factory()
      try {
        await body(t, subject)
      } finally {
        await subject.cleanup()
      }
    })
}
