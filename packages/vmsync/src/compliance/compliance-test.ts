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
