// A 3-member etcd cluster on loopback (Debian's /usr/bin/etcd, default fsync), for the anchor.
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdirSync, openSync } from 'node:fs'
import { join } from 'node:path'
import { Etcd3 } from 'etcd3'

export interface EtcdCluster {
  readonly clientUrls: string[]
  readonly procs: ChildProcess[]
  readonly version: string
}

export async function startEtcd(root: string, ports: number[], bin = '/usr/bin/etcd'): Promise<EtcdCluster> {
  const names = [1, 2, 3].map((i) => `e${i}`)
  const client = (i: number) => `http://127.0.0.1:${ports[i]}`
  const peer = (i: number) => `http://127.0.0.1:${ports[i + 3]}`
  const initial = names.map((n, i) => `${n}=${peer(i)}`).join(',')
  const procs = names.map((name, i) => {
    const dir = join(root, name)
    mkdirSync(dir, { recursive: true })
    const log = openSync(join(root, `${name}.log`), 'w')
    return spawn(
      bin,
      [
        `--name=${name}`,
        `--data-dir=${dir}`,
        `--listen-client-urls=${client(i)}`,
        `--advertise-client-urls=${client(i)}`,
        `--listen-peer-urls=${peer(i)}`,
        `--initial-advertise-peer-urls=${peer(i)}`,
        `--initial-cluster=${initial}`,
        '--initial-cluster-state=new',
        '--initial-cluster-token=plover-bench',
        '--log-level=warn',
      ],
      { stdio: ['ignore', log, log] },
    )
  })
  const clientUrls = names.map((_, i) => client(i))
  // Healthy = every member answers status and agrees on a leader.
  const deadline = Date.now() + 30_000
  const probe = new Etcd3({ hosts: clientUrls })
  try {
    for (;;) {
      try {
        const s = await probe.maintenance.status()
        if (s.leader !== '0') return { clientUrls, procs, version: s.version }
      } catch {}
      if (Date.now() > deadline) throw new Error(`etcd did not become healthy; logs in ${root}`)
      await new Promise((r) => setTimeout(r, 200))
    }
  } finally {
    probe.close()
  }
}

/** A client connected to the current leader only (a follower would forward: an extra hop). */
export async function leaderClient(c: EtcdCluster): Promise<Etcd3> {
  for (const url of c.clientUrls) {
    const cl = new Etcd3({ hosts: url })
    const s = await cl.maintenance.status()
    if (s.leader === s.header.member_id) return cl
    cl.close()
  }
  throw new Error('no etcd leader found')
}

export function stopEtcd(c: EtcdCluster | undefined): void {
  for (const p of c?.procs ?? []) if (p.exitCode === null) p.kill('SIGKILL')
}
