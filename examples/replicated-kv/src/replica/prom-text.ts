// A few Prometheus samples in the text exposition format, for the replica-level numbers that are
// not vmsync's (role, term, client traffic, totals the demo reads). vmsync's own metrics come
// from its prom-client registry and are appended as they are.
export interface Sample {
  readonly name: string
  readonly help: string
  readonly type: 'counter' | 'gauge'
  readonly value: number
}

export function formatSamples(samples: readonly Sample[], labels: Record<string, string>): string {
  const l = Object.entries(labels)
    .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '_')}"`)
    .join(',')
  const lines: string[] = []
  for (const s of samples) {
    lines.push(`# HELP ${s.name} ${s.help}`, `# TYPE ${s.name} ${s.type}`)
    lines.push(`${s.name}${l ? `{${l}}` : ''} ${Number.isFinite(s.value) ? s.value : 0}`)
  }
  return `${lines.join('\n')}\n`
}
