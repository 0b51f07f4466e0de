// Adapted from examples/replicated-kv/src/replica/prom-text.ts (plus per-sample labels, so one
// metric can have several samples). Prometheus samples in the text exposition format for the
// replica-level numbers that are not vmsync's (consensus state, VM counters, process gauges);
// vmsync's own metrics come from its prom-client registry and are appended as they are.
export interface Sample {
  readonly name: string
  readonly help: string
  readonly type: 'counter' | 'gauge'
  readonly value: number
  /** Besides the common labels. */
  readonly labels?: Record<string, string>
}

function labelText(labels: Record<string, string>): string {
  const l = Object.entries(labels)
    .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '_')}"`)
    .join(',')
  return l ? `{${l}}` : ''
}

/** Samples of one name must be adjacent: HELP and TYPE are written once per name. */
export function formatSamples(samples: readonly Sample[], labels: Record<string, string>): string {
  const lines: string[] = []
  let last = ''
  for (const s of samples) {
    if (s.name !== last) lines.push(`# HELP ${s.name} ${s.help}`, `# TYPE ${s.name} ${s.type}`)
    last = s.name
    lines.push(`${s.name}${labelText({ ...labels, ...s.labels })} ${Number.isFinite(s.value) ? s.value : 0}`)
  }
  return `${lines.join('\n')}\n`
}
