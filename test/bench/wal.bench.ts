// WAL append benchmark: `npm run bench:wal`. Appends of one 256-byte entry (+ hard state, like one
// Ready) at concurrency 1, 16 and 64, each acknowledged only after fsync. Reference in the same run:
// a single-member etcd (its WAL fsyncs too) taking 256-byte puts at the same concurrency.
// Prints ops/s, latency p50/p99, appends per fsync, and the ratio to etcd.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { EtcdStore } from '../../control-plane/store/etcd-store.js';
import { FrameType } from '../../control-plane/raft/storage/wal-codec.js';
import { Wal } from '../../control-plane/raft/storage/wal.js';
import { startEtcdCluster } from '../helpers/etcd.js';
import { percentile } from './stats.js';

const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 3000);
const CONCURRENCIES = [1, 16, 64];
const VALUE = 'v'.repeat(256);

interface Result {
  ops: number;
  opsPerSec: number;
  p50: number;
  p99: number;
}

/** Runs `op` from `concurrency` loops for DURATION_MS and measures each call. */
async function drive(concurrency: number, op: (worker: number, i: number) => Promise<void>): Promise<Result> {
  const latencies: number[] = [];
  const start = performance.now();
  const end = start + DURATION_MS;
  let seq = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (performance.now() < end) {
        const t0 = performance.now();
        await op(worker, seq++);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  return { ops: latencies.length, opsPerSec: latencies.length / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

async function benchWal(concurrency: number): Promise<Result & { perFsync: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-bench-wal-'));
  try {
    const { wal } = await Wal.open(dir);
    let index = 0;
    const data = new TextEncoder().encode(VALUE);
    const r = await drive(concurrency, async () => {
      const i = ++index;
      await wal.append([
        { type: FrameType.Entries, entries: [{ index: i, term: 1, type: 'normal', data }] },
        { type: FrameType.HardState, hardState: { term: 1, vote: 'm1', commit: i } },
      ]);
    });
    const perFsync = wal.stats.appends / wal.stats.batches;
    await wal.close();
    return { ...r, perFsync };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function benchEtcd(concurrency: number, store: EtcdStore): Promise<Result> {
  return drive(concurrency, async (worker, i) => {
    await store.put(`/bench/${worker}/${i % 1000}`, VALUE);
  });
}

const fmt = (n: number, digits = 0): string => n.toFixed(digits);

async function main(): Promise<void> {
  const rows: string[][] = [];
  const etcd = await startEtcdCluster();
  const store = new EtcdStore({ endpoints: etcd.endpoints() });
  try {
    for (const c of CONCURRENCIES) {
      const w = await benchWal(c);
      const e = await benchEtcd(c, store);
      rows.push([
        String(c),
        fmt(w.opsPerSec),
        fmt(w.p50, 2),
        fmt(w.p99, 2),
        fmt(w.perFsync, 1),
        fmt(e.opsPerSec),
        fmt(e.p50, 2),
        fmt(e.p99, 2),
        fmt(w.opsPerSec / e.opsPerSec, 2),
      ]);
    }
  } finally {
    await store.close();
    await etcd.stop();
  }
  const header = ['conc', 'wal ops/s', 'wal p50 ms', 'wal p99 ms', 'appends/fsync', 'etcd-1 put/s', 'etcd p50 ms', 'etcd p99 ms', 'wal/etcd'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i] as number)).join('  ');
  console.log(`WAL append (256 B entry + hard state, fsync per batch) vs single-member etcd put, ${DURATION_MS} ms per cell`);
  console.log(line(header));
  for (const r of rows) console.log(line(r));
  console.log('(etcd does much more per op than a WAL append: this ratio bounds what the WAL leaves for the rest of the Raft store.)');
}

await main();
