// Picks the dirty tracker for a QEMU process: soft-dirty where the kernel supports it (cheap: 8
// bytes of pagemap per page), otherwise hash-scan (hash all of RAM). The probe's report is returned
// and logged so it is visible which one a replica runs with, and why.
import type { DirtyTracker, MemorySource } from '@plover/vmsync'
import { HashScanTracker, type PageHashing } from './hash-scan-tracker.js'
import { probeSoftDirty, type SoftDirtyProbeReport } from './soft-dirty-probe.js'
import { SoftDirtyTracker } from './soft-dirty-tracker.js'

export type DirtyTrackerKind = 'hash-scan' | 'soft-dirty'

export interface SelectTrackerOptions {
  readonly pid: number
  readonly source: MemorySource & { kind: 'file' }
  readonly hasher: PageHashing
  readonly isPaused: () => boolean
  readonly changeStamp?: () => number
  readonly pageSize?: number
  /** Forces a kind (tests, benchmarks); by default the probe decides. */
  readonly prefer?: DirtyTrackerKind
  /** A probe result to reuse: the kernel does not change between VMs of one process. */
  readonly probe?: SoftDirtyProbeReport
  readonly log?: (message: string) => void
}

export interface SelectedTracker {
  readonly tracker: (HashScanTracker | SoftDirtyTracker) & DirtyTracker
  readonly kind: DirtyTrackerKind
  readonly probe: SoftDirtyProbeReport
}

let cachedProbe: Promise<SoftDirtyProbeReport> | undefined

/** The soft-dirty probe, run once per process. */
export function softDirtyCapability(): Promise<SoftDirtyProbeReport> {
  cachedProbe ??= probeSoftDirty()
  return cachedProbe
}

export async function selectDirtyTracker(options: SelectTrackerOptions): Promise<SelectedTracker> {
  const probe = options.probe ?? (await softDirtyCapability())
  const kind: DirtyTrackerKind = options.prefer ?? (probe.supported ? 'soft-dirty' : 'hash-scan')
  options.log?.(
    `dirty tracking: ${kind} (soft-dirty ${probe.supported ? 'works' : 'unavailable'}: ${probe.reason}; ` +
      `${probe.dirtyAfterWrite}/${probe.probePages} probe pages dirty after write (${probe.presentAfterWrite} present), ` +
      `${probe.dirtyAfterClear} after clear)`,
  )
  if (kind === 'soft-dirty') {
    const tracker = await SoftDirtyTracker.open({
      pid: options.pid,
      ramPath: options.source.path,
      ramOffset: options.source.offset,
      size: options.source.size,
      pageSize: options.pageSize,
      isPaused: options.isPaused,
    })
    return { tracker, kind, probe }
  }
  const tracker = new HashScanTracker({
    hasher: options.hasher,
    source: options.source,
    pageSize: options.pageSize,
    isPaused: options.isPaused,
    changeStamp: options.changeStamp,
  })
  return { tracker, kind, probe }
}
