// Store benchmark: a 3-member Tessera Raft store (three member processes on loopback, WAL with
// fdatasync) against a 3-member etcd (Debian's etcd-server, fsync on by default) in the same run,
// each both in plaintext and over mutual TLS. Run: npm run bench:store
//
// What is timed:
// - Throughput rows: puts of 256-byte values at concurrency 1, 16, 64 and 256, and linearizable
//   reads at 64. Each latency is one request as the client library sees it (RaftKvClient.put /
//   range, EtcdStore.put / get): from the call to its answer; ops/s counts the requests answered in
//   BENCH_SECONDS. Clients spread requests over all three members, as the etcd client does; the
//   load comes from BENCH_CLIENT_PROCESSES (default 2) processes of store-load.ts, the same ones
//   for every store. Both stores snapshot every 100,000 entries (etcd's default).
// - TLS rows (put c=64): the same workload, client path and load processes against Tessera-TLS
//   (members serve and dial each other over mutual TLS with manager certificates from one test CA,
//   the Raft port admits manager certificates only, checked per call as tsd does; the load
//   processes present a manager certificate) and etcd-TLS (--client-cert-auth and
//   --peer-client-cert-auth, https, certificates from the same CA). The ratio printed is
//   Tessera-TLS / etcd-TLS.
// - Steady-state TLS cost per put: CPU time, not latency. Around each measurement the bench reads
//   utime+stime of the three member processes from /proc/<pid>/stat (10 ms ticks; all threads),
//   and each load process its own process.cpuUsage(); divided by the puts answered. The cost is
//   TLS minus plaintext at c=64; the p50 latency difference is printed beside it.
// - TLS handshake per new node: a fresh client in a process of its own with no other connection
//   (new credentials and channel, TCP connect, mutual-TLS handshake, then one status call: Raft
//   Status for Tessera, Maintenance.Status for etcd), timed from the client's creation to that
//   call's answer; median of BENCH_HANDSHAKES, members taken in turn. The same without TLS is
//   printed beside it, so the difference is what the handshake adds.
// - Leader fail-over (plaintext): kill -9 of the leader until the first write that started after it
//   succeeds.
// Rows are the median of BENCH_ROUNDS rounds (default 5) of BENCH_SECONDS each (default 3), the
// stores taking turns; CPU figures are the median over the rounds. BENCH_FAILOVERS (default 5).
// - etcd sealed vs plain (store-sealed.ts): the same etcd through SealedStore and through EtcdStore,
//   one client in this process, put and get at c=64, taking turns round by round.
// BENCH_ONLY=failover: only the fail-overs. BENCH_ONLY=tls: only put c=64 for the four stores
// (plaintext ones as the baseline of the TLS cost) and the handshakes, no fail-overs.
// BENCH_ONLY=sealed: only the sealed-etcd rows.
import { cpus, loadavg } from 'node:os';

import { etcdBackend, etcdTlsBackend, tesseraBackend, tesseraTlsBackend, type Backend, type ServedStore } from './store-backends.js';
import type { StoreName } from './store-load.js';
import { LoadPool, type Result } from './store-pool.js';
import { writeBenchPki } from './store-tls.js';
import { median } from './stats.js';
import { sealedTable, sealedVsPlain } from './store-sealed.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const FAILOVERS = Number(process.env.BENCH_FAILOVERS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const LOAD_PROCESSES = Number(process.env.BENCH_CLIENT_PROCESSES ?? 2);
const HANDSHAKES = Number(process.env.BENCH_HANDSHAKES ?? 20);
const ONLY = process.env.BENCH_ONLY;

interface Workload {
  name: string;
  op: 'put' | 'get';
  concurrency: number;
  stores: StoreName[];
}

const PLAINTEXT: StoreName[] = ['tessera', 'etcd'];
const EVERY_STORE: StoreName[] = ['tessera', 'etcd', 'tessera-tls', 'etcd-tls'];
const TLS_ROW = 'put c=64';

function workloads(): Workload[] {
  if (ONLY === 'tls') return [{ name: TLS_ROW, op: 'put', concurrency: 64, stores: EVERY_STORE }];
  return [
    ...[1, 16, 64, 256].map((c) => ({ name: `put c=${c}`, op: 'put' as const, concurrency: c, stores: c === 64 ? EVERY_STORE : PLAINTEXT })),
    { name: 'get c=64 (linearizable)', op: 'get', concurrency: 64, stores: PLAINTEXT },
  ];
}

type Row = Map<StoreName, Result>;

/** The round with the median throughput (its p50/p99 with it, so they belong together); CPU is the median over rounds. */
function summarizeRounds(rs: Result[]): Result {
  const mid = [...rs].sort((a, b) => a.ops - b.ops)[Math.floor(rs.length / 2)] as Result;
  return { ...mid, serverCpuUs: median(rs.map((r) => r.serverCpuUs)), clientCpuUs: median(rs.map((r) => r.clientCpuUs)) };
}

function ratioNote(round: Row, a: StoreName, b: StoreName): string {
  const x = round.get(a);
  const y = round.get(b);
  return x && y ? `${a}/${b} ${(x.ops / y.ops).toFixed(2)}` : '';
}

/**
 * Every cluster runs for the whole measurement and they take turns, row by row, in alternating
 * order (forward, then backward): load that drifts during the run (this is a shared 2-core
 * machine) falls on all alike.
 */
async function runRounds(load: LoadPool, stores: Map<StoreName, ServedStore>): Promise<Map<string, Row>> {
  const out = new Map<string, Row>();
  for (const w of workloads()) {
    const rounds: Row[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? w.stores : [...w.stores].reverse();
      const got: Row = new Map();
      for (const name of order) got.set(name, await load.measure(stores.get(name) as ServedStore, w.op, w.concurrency));
      rounds.push(got);
    }
    out.set(w.name, new Map(w.stores.map((name) => [name, summarizeRounds(rounds.map((g) => g.get(name) as Result))])));
    const notes = rounds.map((g) => [ratioNote(g, 'tessera', 'etcd'), ratioNote(g, 'tessera-tls', 'etcd-tls')].filter(Boolean).join(', '));
    process.stderr.write(`${w.name}: ${notes.join(' | ')} (ops ratio per round)\n`);
  }
  return out;
}

/** Fresh clients against each store, interleaved (one per store in turn) so drift falls on all alike. */
async function measureHandshakes(stores: Map<StoreName, ServedStore>, tlsDir: string): Promise<Map<StoreName, number[]>> {
  // A process of its own: in the load processes, a plaintext client would share their connections.
  const pool = new LoadPool(1, SECONDS);
  const out = new Map<StoreName, number[]>(EVERY_STORE.map((s) => [s, []]));
  try {
    for (let i = 0; i < HANDSHAKES; i++) {
      for (const name of EVERY_STORE) {
        const store = stores.get(name) as ServedStore;
        // Rotate the start so that every member gets its share of fresh clients.
        const rotated = { ...store, endpoints: [...store.endpoints.slice(i % 3), ...store.endpoints.slice(0, i % 3)] };
        out.get(name)?.push(...(await pool.handshakes(rotated, tlsDir, 1)));
      }
    }
  } finally {
    await pool.close();
  }
  return out;
}

async function measureThroughput(): Promise<{ rows: Map<string, Row>; handshakes: Map<StoreName, number[]> }> {
  const pki = await writeBenchPki(3);
  const stores = new Map<StoreName, ServedStore>();
  let load: LoadPool | undefined;
  try {
    for (const start of [tesseraBackend, etcdBackend, () => tesseraTlsBackend(pki), () => etcdTlsBackend(pki)]) {
      const s = await start();
      stores.set(s.name, s);
    }
    load = new LoadPool(LOAD_PROCESSES, SECONDS);
    await load.connect([...stores.values()], pki.dir);
    const rows = await runRounds(load, stores);
    await load.close();
    load = undefined;
    return { rows, handshakes: await measureHandshakes(stores, pki.dir) };
  } finally {
    await load?.close();
    for (const s of stores.values()) await s.close();
    await pki.remove();
  }
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

function fmt(r: Result): string {
  return `${Math.round(r.ops).toString().padStart(7)} ${r.p50.toFixed(1).padStart(7)} ${r.p99.toFixed(1).padStart(7)}`;
}

const signed = (x: number, digits: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(digits)}`;

function plaintextTable(rows: Map<string, Row>): string[] {
  const lines = [
    `${'workload'.padEnd(26)} | ${'tessera ops/s  p50ms   p99ms'} | ${'etcd    ops/s  p50ms   p99ms'} | ops ratio  p99 ratio`,
    `${'-'.repeat(26)}-+-${'-'.repeat(28)}-+-${'-'.repeat(28)}-+-${'-'.repeat(19)}`,
  ];
  for (const [name, row] of rows) {
    const tr = row.get('tessera') as Result;
    const er = row.get('etcd') as Result;
    lines.push(
      `${name.padEnd(26)} | ${'       '}${fmt(tr)} | ${'       '}${fmt(er)} | ${(tr.ops / er.ops).toFixed(2).padStart(9)} ${(tr.p99 / er.p99).toFixed(2).padStart(10)}`,
    );
  }
  return lines;
}

function tlsTable(row: Row, handshakes: Map<StoreName, number[]>): string[] {
  const get = (s: StoreName): Result => row.get(s) as Result;
  const lines = [
    `mutual TLS, ${TLS_ROW} (same load processes and client path as above):`,
    `${'store'.padEnd(12)} |   ops/s   p50ms   p99ms | server CPU µs/put | client CPU µs/put`,
    `${'-'.repeat(12)}-+-------------------------+-------------------+------------------`,
  ];
  for (const s of EVERY_STORE) {
    const r = get(s);
    lines.push(`${s.padEnd(12)} | ${fmt(r)} | ${r.serverCpuUs.toFixed(0).padStart(17)} | ${r.clientCpuUs.toFixed(0).padStart(17)}`);
  }
  const [tt, et, tp, ep] = [get('tessera-tls'), get('etcd-tls'), get('tessera'), get('etcd')];
  const hs = (s: StoreName): string => median(handshakes.get(s) ?? []).toFixed(1);
  lines.push(
    `tessera-tls / etcd-tls: ops ratio ${(tt.ops / et.ops).toFixed(2)}, p99 ratio ${(tt.p99 / et.p99).toFixed(2)} (goal: ops ratio at least 1.0)`,
    `steady-state TLS cost per put at c=64 (TLS minus plaintext): server CPU µs tessera ${signed(tt.serverCpuUs - tp.serverCpuUs, 0)}, etcd ${signed(et.serverCpuUs - ep.serverCpuUs, 0)}; ` +
      `client CPU µs tessera ${signed(tt.clientCpuUs - tp.clientCpuUs, 0)}, etcd ${signed(et.clientCpuUs - ep.clientCpuUs, 0)}; ` +
      `p50 ms tessera ${signed(tt.p50 - tp.p50, 2)}, etcd ${signed(et.p50 - ep.p50, 2)}`,
    `TLS handshake per new node (fresh client to first answer, median of ${HANDSHAKES}), ms: tessera-tls ${hs('tessera-tls')} (plaintext ${hs('tessera')}); ` +
      `etcd-tls ${hs('etcd-tls')} (plaintext ${hs('etcd')}); ratio ${(median(handshakes.get('tessera-tls') ?? []) / median(handshakes.get('etcd-tls') ?? [])).toFixed(2)}`,
  );
  return lines;
}

const loadAtStart = loadavg()[0]!;

async function main(): Promise<void> {
  if (ONLY !== undefined && ONLY !== 'failover' && ONLY !== 'tls' && ONLY !== 'sealed')
    throw new Error(`BENCH_ONLY must be failover, tls or sealed, got "${ONLY}"`);
  const lines = [
    `store benchmark: 3 members each, fsync on, 256-byte values; each row the median of ${ROUNDS} rounds of ${SECONDS} s, the stores taking turns`,
  ];
  if (ONLY === undefined || ONLY === 'sealed') lines.push('', ...sealedTable(await sealedVsPlain(ROUNDS, SECONDS)));
  if (ONLY !== 'failover' && ONLY !== 'sealed') {
    const { rows, handshakes } = await measureThroughput();
    lines.push('', ...plaintextTable(rows), '', ...tlsTable(rows.get(TLS_ROW) as Row, handshakes));
  }
  if (ONLY !== 'tls' && ONLY !== 'sealed') {
    const tf = await failovers(tesseraBackend);
    const ef = await failovers(etcdBackend);
    lines.push(
      '',
      `leader fail-over (kill -9 to first successful write), ms: tessera ${tf.join(', ')} (median ${median(tf)}); etcd ${ef.join(', ')} (median ${median(ef)}); ratio ${(median(tf) / median(ef)).toFixed(2)}`,
    );
  }
  lines.splice(
    1,
    0,
    `load average (1 min) at start ${loadAtStart.toFixed(2)}, at end ${loadavg()[0]!.toFixed(2)} on ${cpus().length} cores (compare only within one run)`,
  );
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((err: Error) => {
  process.stderr.write(`bench:store failed: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
