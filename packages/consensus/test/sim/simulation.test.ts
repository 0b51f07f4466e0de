// Seeded simulation of 3 and 5 replicas under faults (src/sim/simulation.ts). CI runs 1000
// seeds in total (PLOVER_SIM_SEEDS to change); a failure prints the command that replays it
// (PLOVER_SIM_SEED=n PLOVER_SIM_SHAPE=name, plus PLOVER_SIM_TRACE=1|2 for an event trace).
import t from 'tap'
import {
  defaultSimConfig,
  emptySimStats,
  runSimulation,
  type SimConfig,
  type SimStats,
} from '../../src/sim/simulation.js'

interface Shape {
  name: string
  voters: number
  witnesses: number
  /** Share of the seed budget. */
  share: number
}

const shapes: Shape[] = [
  { name: 'plover-2v1w', voters: 2, witnesses: 1, share: 0.45 },
  { name: 'voters-3', voters: 3, witnesses: 0, share: 0.25 },
  { name: 'voters-5', voters: 5, witnesses: 0, share: 0.15 },
  { name: 'mixed-3v2w', voters: 3, witnesses: 2, share: 0.15 },
]

const total = Number(process.env.PLOVER_SIM_SEEDS ?? 1000)
const onlySeed = process.env.PLOVER_SIM_SEED === undefined ? undefined : Number(process.env.PLOVER_SIM_SEED)
const onlyShape = process.env.PLOVER_SIM_SHAPE
const file = 'test/sim/simulation.test.ts'

for (const shape of shapes) {
  if (onlyShape && shape.name !== onlyShape) continue
  t.test(shape.name, async (t) => {
    const seeds =
      onlySeed !== undefined
        ? [onlySeed]
        : Array.from({ length: Math.max(1, Math.round(total * shape.share)) }, (_, i) => i + 1)
    const sum: SimStats = emptySimStats()
    let failures = 0
    for (const seed of seeds) {
      const cfg: SimConfig = { ...defaultSimConfig, seed, voters: shape.voters, witnesses: shape.witnesses }
      // Replaying one seed: PLOVER_SIM_TRACE=1 prints its events, =2 also every delivered message.
      if (onlySeed !== undefined && process.env.PLOVER_SIM_TRACE) {
        cfg.trace = (line) => t.comment(line)
        cfg.traceMessages = process.env.PLOVER_SIM_TRACE === '2'
      }
      const r = runSimulation(cfg)
      for (const k of Object.keys(sum) as (keyof SimStats)[]) sum[k] += r.stats[k]
      if (!r.ok) {
        failures++
        t.fail(
          `seed ${seed} failed at step ${r.step}: ${r.error}\n  replay: PLOVER_SIM_SEED=${seed} PLOVER_SIM_SHAPE=${shape.name} pnpm test ${file}`,
        )
        if (failures >= 3) break
      }
    }
    t.equal(failures, 0, `${seeds.length} seeds without a safety, liveness or linearizability failure`)
    t.comment(JSON.stringify(sum))
    if (onlySeed === undefined && seeds.length >= 20) {
      // The faults must actually happen, or the run proves nothing.
      t.ok(sum.leaders > seeds.length, 'many elections')
      t.ok(sum.commits > seeds.length * 20, 'many operations committed')
      t.ok(sum.crashes > seeds.length, 'crashes')
      t.ok(sum.tornWrites > 0, 'torn writes')
      t.ok(sum.partitions > seeds.length / 2, 'partitions')
      t.ok(sum.snapshotsSent > 0, 'snapshots sent to lagging followers')
      t.ok(sum.replacements > seeds.length / 10, 'dead voters replaced (one server at a time)')
      t.ok(sum.proposalsDropped > 0, 'leaders refused proposals beyond maxUncommittedBytes')
      if (shape.witnesses > 0) {
        t.ok(sum.witnessFaults > seeds.length / 4, 'primary died right after the witness acked')
        t.equal(sum.witnessRecoveries, sum.witnessFaults, 'every such fault was recovered by a backup')
        t.ok(sum.catchUps > 0, 'witness catch-up used')
      }
    }
  })
}
