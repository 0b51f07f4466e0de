// Compliance suites: "implements CpuProbe" means "passes these checks", not just "type-checks".
export {
  type ComplianceTest,
  type CpuProbeComplianceOptions,
  type CpuProbeSubject,
  runCpuProbeCompliance,
} from './cpu-probe.js'
