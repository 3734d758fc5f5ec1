// Store benchmark: a 3-member Tessera Raft store (three member processes on loopback, WAL with
// fdatasync) against a 3-member etcd (Debian's etcd-server, fsync on by default) in the same run:
// puts of 256-byte values at concurrency 1, 16, 64 and 256, linearizable reads at 64, and leader
// fail-over (kill -9 of the leader until the first write that started after it succeeds).
// Clients spread requests over all three members, as the etcd client does; the load comes from
// BENCH_CLIENT_PROCESSES (default 2) processes of store-load.ts, the same ones for both stores. Both snapshot every
// 100,000 entries (etcd's default). Run: npm run bench:store
// (BENCH_SECONDS per measurement, default 3; BENCH_ROUNDS per row and store, default 5;
// BENCH_FAILOVERS, default 5; BENCH_ONLY=failover skips the throughput rows).
import { fork, type ChildProcess } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { LOCAL_INSECURE } from '../../common/transport/credentials.js';
import { RaftKvClient } from '../../control-plane/raft/transport/kv-client.js';
import { EtcdStore } from '../../control-plane/store/etcd-store.js';
import { startEtcdCluster, type EtcdCluster, type EtcdMember } from '../helpers/etcd.js';
import { startRaftProcesses, type RaftProcessCluster } from '../integration/raft-harness.js';
import type { LoadCommand, LoadReply, StoreName } from './store-load.js';
import { median, percentile } from './stats.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const FAILOVERS = Number(process.env.BENCH_FAILOVERS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const LOAD_PROCESSES = Number(process.env.BENCH_CLIENT_PROCESSES ?? 2);
const HERE = dirname(fileURLToPath(import.meta.url));
const VALUE = 'v'.repeat(256);

interface Result {
  ops: number;
  p50: number;
  p99: number;
}

interface Backend {
  name: StoreName;
  /** Where the load processes connect: member client addresses (Tessera) or client URLs (etcd). */
  endpoints: string[];
  /** A put from this process (warming up before a fail-over). */
  put(worker: number, key: string): Promise<void>;
  /** Kills the leader; resolves with ms until a write started after the kill succeeded. */
  failover(): Promise<number>;
  close(): Promise<void>;
}

function summarize(latencies: number[]): Result {
  return { ops: latencies.length / SECONDS, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

/** The load generator processes (store-load.ts), each answering one command at a time. */
class LoadPool {
  private readonly procs: ChildProcess[];

  constructor(count: number) {
    this.procs = Array.from({ length: count }, () =>
      fork(join(HERE, 'store-load.ts'), [], { execArgv: ['--import', 'tsx'], cwd: join(HERE, '..', '..'), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
    );
  }

  private ask(proc: ChildProcess, command: LoadCommand): Promise<LoadReply> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`store-load process exited with ${code}`));
      proc.once('exit', onExit);
      proc.once('message', (reply: LoadReply) => {
        proc.off('exit', onExit);
        resolve(reply);
      });
      proc.send(command);
    });
  }

  async connect(tessera: string[], etcd: string[]): Promise<void> {
    await Promise.all(this.procs.map((p) => this.ask(p, { type: 'connect', tessera, etcd })));
  }

  /** `concurrency` workers spread over the processes, all running for SECONDS. */
  async measure(store: StoreName, op: 'put' | 'get', concurrency: number): Promise<Result> {
    const runs: Array<Promise<LoadReply>> = [];
    let first = 0;
    this.procs.forEach((p, k) => {
      const workers = Math.floor(concurrency / this.procs.length) + (k < concurrency % this.procs.length ? 1 : 0);
      if (workers === 0) return;
      runs.push(this.ask(p, { type: 'run', store, op, workers, firstWorker: first, seconds: SECONDS }));
      first += workers;
    });
    return summarize((await Promise.all(runs)).flatMap((r) => r.latencies));
  }

  async close(): Promise<void> {
    await Promise.all(
      this.procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null) return resolve();
            p.once('exit', () => resolve());
            p.send({ type: 'close' } satisfies LoadCommand);
          }),
      ),
    );
  }
}

async function writeUntilSuccess(put: () => Promise<void>, deadlineMs = 30_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    try {
      await put();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

async function tesseraBackend(): Promise<Backend> {
  // Snapshot every 100,000 entries, etcd's default --snapshot-count (etcd runs with its defaults).
  const cluster: RaftProcessCluster = await startRaftProcesses({ members: 3, netns: false, snapshotEvery: 100_000 });
  const clients = [0, 1, 2].map((i) => new RaftKvClient(cluster.clientAddresses(), LOCAL_INSECURE, i));
  await cluster.leader();
  return {
    name: 'tessera',
    endpoints: cluster.clientAddresses(),
    put: async (w, key) => {
      await (clients[w % 3] as RaftKvClient).put(key, VALUE);
    },
    failover: async () => {
      const leader = await cluster.leader();
      const kv = new RaftKvClient(
        cluster.members.filter((m) => m !== leader).map((m) => m.clientAddress),
        LOCAL_INSECURE,
      );
      const t0 = Date.now();
      await cluster.kill(leader);
      await writeUntilSuccess(() => kv.put('/bench/failover', String(t0), 2000).then(() => undefined));
      const ms = Date.now() - t0;
      kv.close();
      await cluster.restart(leader);
      return ms;
    },
    close: async () => {
      for (const c of clients) c.close();
      await cluster.stop();
    },
  };
}

async function etcdLeader(cluster: EtcdCluster): Promise<EtcdMember> {
  for (let attempt = 0; attempt < 100; attempt++) {
    for (const m of cluster.members) {
      try {
        const res = await fetch(`${m.clientUrl}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(1000) });
        const body = (await res.json()) as { header?: { member_id?: string }; leader?: string };
        if (body.leader && body.header?.member_id === body.leader) return m;
      } catch {
        // down or starting
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('etcd: no leader found');
}

async function etcdBackend(): Promise<Backend> {
  const cluster = await startEtcdCluster({ members: 3 });
  const stores = [0, 1, 2].map((i) => new EtcdStore({ endpoints: [cluster.members[i]!.clientUrl] }));
  return {
    name: 'etcd',
    endpoints: cluster.members.map((m) => m.clientUrl),
    put: async (w, key) => {
      await (stores[w % 3] as EtcdStore).put(key, VALUE);
    },
    failover: async () => {
      const leader = await etcdLeader(cluster);
      // Through etcd's JSON gateway straight to the survivors, each attempt bounded by 1 s: the
      // etcd3 client's own retry back-off (about 7 s here) would measure the client, not etcd.
      const others = cluster.members.filter((m) => m !== leader).map((m) => m.clientUrl);
      const body = JSON.stringify({ key: Buffer.from('/bench/failover').toString('base64'), value: Buffer.from('x').toString('base64') });
      let next = 0;
      const t0 = Date.now();
      await cluster.kill(leader);
      await writeUntilSuccess(async () => {
        const url = others[next++ % others.length] as string;
        const res = await fetch(`${url}/v3/kv/put`, { method: 'POST', body, signal: AbortSignal.timeout(1000) });
        const answer = (await res.json()) as { header?: { revision?: string }; error?: string };
        if (!res.ok || !answer.header?.revision) throw new Error(`etcd put: ${res.status} ${answer.error ?? ''}`);
      });
      return Date.now() - t0;
    },
    close: async () => {
      for (const s of stores) await s.close();
      await cluster.stop();
    },
  };
}

function fmt(r: Result): string {
  return `${Math.round(r.ops).toString().padStart(7)} ${r.p50.toFixed(1).padStart(7)} ${r.p99.toFixed(1).padStart(7)}`;
}

/** The workloads, each measured ROUNDS times per store, the two stores taking turns. */
const WORKLOADS: Array<{ name: string; op: 'put' | 'get'; concurrency: number }> = [
  ...[1, 16, 64, 256].map((c) => ({ name: `put c=${c}`, op: 'put' as const, concurrency: c })),
  { name: 'get c=64 (linearizable)', op: 'get', concurrency: 64 },
];

/**
 * Both clusters run for the whole measurement and take turns, row by row, in alternating order
 * (T E, E T, T E …): load that drifts during the run (this is a shared 2-core machine) falls on
 * both alike. Each row reports the median of its rounds (ops/s and p99 of the same round).
 */
async function runPaired(load: LoadPool): Promise<Map<string, [Result, Result]>> {
  const out = new Map<string, [Result, Result]>();
  for (const w of WORKLOADS) {
    const rounds: Array<[Result, Result]> = [];
    for (let r = 0; r < ROUNDS; r++) {
      const order: StoreName[] = r % 2 === 0 ? ['tessera', 'etcd'] : ['etcd', 'tessera'];
      const got = new Map<StoreName, Result>();
      for (const store of order) got.set(store, await load.measure(store, w.op, w.concurrency));
      rounds.push([got.get('tessera') as Result, got.get('etcd') as Result]);
    }
    out.set(w.name, [medianResult(rounds.map((x) => x[0])), medianResult(rounds.map((x) => x[1]))]);
    process.stderr.write(`${w.name}: ${rounds.map(([a, b]) => (a.ops / b.ops).toFixed(2)).join(' ')} (tessera/etcd per round)\n`);
  }
  return out;
}

/** The round with the median throughput (its p50/p99 with it, so the figures belong together). */
function medianResult(rs: Result[]): Result {
  return [...rs].sort((a, b) => a.ops - b.ops)[Math.floor(rs.length / 2)] as Result;
}

async function failovers(make: () => Promise<Backend>): Promise<number[]> {
  // A fresh cluster per fail-over for etcd (its helper cannot restart a killed member); Tessera
  // restarts the killed member in place, but for symmetry both start fresh each time.
  const times: number[] = [];
  for (let i = 0; i < FAILOVERS; i++) {
    const b = await make();
    try {
      for (let k = 0; k < 50; k++) await b.put(0, `/bench/warm/${k}`);
      times.push(await b.failover());
    } finally {
      await b.close();
    }
  }
  return times;
}

const loadAtStart = loadavg()[0]!;

async function main(): Promise<void> {
  let results = new Map<string, [Result, Result]>();
  if (process.env.BENCH_ONLY !== 'failover') {
    const t = await tesseraBackend();
    const e = await etcdBackend();
    const load = new LoadPool(LOAD_PROCESSES);
    try {
      await load.connect(t.endpoints, e.endpoints);
      results = await runPaired(load);
    } finally {
      await load.close();
      await t.close();
      await e.close();
    }
  }
  const tf = await failovers(tesseraBackend);
  const ef = await failovers(etcdBackend);
  const lines = [
    `store benchmark: 3 members each, fsync on, 256-byte values; each row the median of ${ROUNDS} rounds of ${SECONDS} s, the two stores taking turns`,
    `load average (1 min) at start ${loadAtStart.toFixed(2)}, at end ${loadavg()[0]!.toFixed(2)} on ${cpus().length} cores (compare only within one run)`,
    '',
    `${'workload'.padEnd(26)} | ${'tessera ops/s  p50ms   p99ms'} | ${'etcd    ops/s  p50ms   p99ms'} | ops ratio  p99 ratio`,
    `${'-'.repeat(26)}-+-${'-'.repeat(28)}-+-${'-'.repeat(28)}-+-${'-'.repeat(19)}`,
  ];
  for (const [name, [tr, er]] of results) {
    lines.push(
      `${name.padEnd(26)} | ${'       '}${fmt(tr)} | ${'       '}${fmt(er)} | ${(tr.ops / er.ops).toFixed(2).padStart(9)} ${(tr.p99 / er.p99).toFixed(2).padStart(10)}`,
    );
  }
  lines.push('');
  lines.push(
    `leader fail-over (kill -9 to first successful write), ms: tessera ${tf.join(', ')} (median ${median(tf)}); etcd ${ef.join(', ')} (median ${median(ef)}); ratio ${(median(tf) / median(ef)).toFixed(2)}`,
  );
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((err: Error) => {
  process.stderr.write(`bench:store failed: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
