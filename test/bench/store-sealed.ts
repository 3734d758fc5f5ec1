// bench:store's sealed-etcd rows: the same 3-member etcd, written and read through EtcdStore
// (plain) and through SealedStore over EtcdStore (every value sealed with AES-256-GCM before it
// leaves the client, opened after it comes back), by one client in this process, the two taking
// turns round by round. Puts of 256-byte values and reads of them, BENCH_SEALED_CONCURRENCY
// (default 64) at once. The client CPU per operation is this process's user+system time over the
// operations answered: what sealing adds lands there, since etcd only sees longer values.
import { randomBytes } from 'node:crypto';

import { EtcdStore } from '../../control-plane/store/etcd-store.js';
import { SealedStore } from '../../control-plane/store/sealed-store.js';
import type { Store } from '../../control-plane/store/store.js';
import { startEtcdCluster } from '../helpers/etcd.js';
import { median, percentile } from './stats.js';

const VALUE = 'v'.repeat(256);
/** Each store its own keys: the sealed store refuses a plain value (a put's previous value included). */
const PREFIX = { plain: '/tessera/bench-plain/', sealed: '/tessera/bench-sealed/' } as const;

export interface SealedRow {
  op: 'put' | 'get';
  plain: SealedResult;
  sealed: SealedResult;
}

export interface SealedResult {
  ops: number;
  p50: number;
  p99: number;
  clientCpuUs: number;
}

async function measure(store: Store, prefix: string, op: 'put' | 'get', concurrency: number, seconds: number): Promise<SealedResult> {
  const latencies: number[] = [];
  const cpuBefore = process.cpuUsage();
  const end = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      for (let i = 0; Date.now() < end; i++) {
        const key = `${prefix}${w}/${i % 100}`;
        const t0 = performance.now();
        if (op === 'put') await store.put(key, VALUE);
        else await store.get(key);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const cpu = process.cpuUsage(cpuBefore);
  latencies.sort((a, b) => a - b);
  return {
    ops: latencies.length / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    clientCpuUs: (cpu.user + cpu.system) / latencies.length,
  };
}

function medianResult(rs: SealedResult[]): SealedResult {
  const mid = [...rs].sort((a, b) => a.ops - b.ops)[Math.floor(rs.length / 2)] as SealedResult;
  return { ...mid, clientCpuUs: median(rs.map((r) => r.clientCpuUs)) };
}

export async function sealedVsPlain(rounds: number, seconds: number): Promise<SealedRow[]> {
  const concurrency = Number(process.env.BENCH_SEALED_CONCURRENCY ?? 64);
  const cluster = await startEtcdCluster({ members: 3 });
  const plain = new EtcdStore({ endpoints: cluster.endpoints() });
  const sealed = await SealedStore.open(new EtcdStore({ endpoints: cluster.endpoints() }), randomBytes(32));
  try {
    const rows: SealedRow[] = [];
    for (const op of ['put', 'get'] as const) {
      const got = { plain: [] as SealedResult[], sealed: [] as SealedResult[] };
      for (let r = 0; r < rounds; r++) {
        const order = r % 2 === 0 ? (['plain', 'sealed'] as const) : (['sealed', 'plain'] as const);
        for (const name of order) got[name].push(await measure(name === 'plain' ? plain : sealed, PREFIX[name], op, concurrency, seconds));
      }
      rows.push({ op, plain: medianResult(got.plain), sealed: medianResult(got.sealed) });
    }
    return rows;
  } finally {
    await plain.close();
    await sealed.close();
    await cluster.stop();
  }
}

export function sealedTable(rows: SealedRow[]): string[] {
  const concurrency = Number(process.env.BENCH_SEALED_CONCURRENCY ?? 64);
  const fmt = (r: SealedResult): string =>
    `${Math.round(r.ops).toString().padStart(7)} ${r.p50.toFixed(1).padStart(7)} ${r.p99.toFixed(1).padStart(7)} ${r.clientCpuUs.toFixed(0).padStart(6)}`;
  const lines = [
    `etcd sealed (SealedStore: AES-256-GCM per value in the client) vs plain, same 3-member etcd, one client process, c=${concurrency}:`,
    `${'workload'.padEnd(10)} | plain   ops/s  p50ms   p99ms cpuµs | sealed  ops/s  p50ms   p99ms cpuµs | sealed/plain ops  p99`,
  ];
  for (const r of rows) {
    lines.push(
      `${`${r.op} c=${concurrency}`.padEnd(10)} | ${'      '}${fmt(r.plain)} | ${'      '}${fmt(r.sealed)} | ${(r.sealed.ops / r.plain.ops).toFixed(2).padStart(16)} ${(r.sealed.p99 / r.plain.p99).toFixed(2).padStart(4)}`,
    );
  }
  return lines;
}
