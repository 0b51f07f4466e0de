// Where a sync's time goes, step by step: each lap() records the milliseconds since the previous
// lap under a name. Reported as SyncReport.stepsMs so an operator can tell a slow hash scan from a
// slow peer or a slow device-state load without a profiler.
export class StepTimer {
  private last = performance.now()
  private readonly steps: Record<string, number> = {}

  /** Records the time since the previous lap (or construction) under `name`, adding to it. */
  lap(name: string): void {
    const now = performance.now()
    this.steps[name] = (this.steps[name] ?? 0) + (now - this.last)
    this.last = now
  }

  /** Starts the next step now without recording the time since the previous lap. */
  skip(): void {
    this.last = performance.now()
  }

  snapshot(): Readonly<Record<string, number>> {
    return { ...this.steps }
  }
}
