// WAL append benchmark: `npm run bench:wal`. Appends of one 256-byte entry (+ hard state, like one
// Ready) at concurrency 1, 16 and 64, each acknowledged only after fsync. Reference in the same run:
// a single-member etcd (its WAL fsyncs too) taking 256-byte puts at the same concurrency.
// Prints ops/s, latency p50/p99, appends per fsync, and the ratio to etcd.
// Encryption at rest: the same appends to an encrypted WAL (every record sealed with AES-256-GCM)
// beside plaintext ones, alternating per concurrency in the same run, with the ratio; and the CPU
// cost alone: encoding a record, and a snapshot file, plain and sealed (no I/O).
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { EtcdStore } from '../../control-plane/store/etcd-store.js';
import { NonceSource } from '../../control-plane/raft/storage/keyring.js';
import { encodeSealedRecord } from '../../control-plane/raft/storage/sealed-record.js';
import { KEY_BYTES, type DataKey, type SealingKeys } from '../../control-plane/raft/storage/sealing.js';
import { encodeSnapshot } from '../../control-plane/raft/storage/snapshotter.js';
import { FrameType, encodeRecord, type WalRecord } from '../../control-plane/raft/storage/wal-codec.js';
import { Wal } from '../../control-plane/raft/storage/wal.js';
import { startEtcdCluster } from '../helpers/etcd.js';
import { percentile } from './stats.js';

const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 3000);
const CONCURRENCIES = [1, 16, 64];
const VALUE = 'v'.repeat(256);
/** Entries per append in the encryption table's last row. */
const READY_ENTRIES = 64;

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

/** One data key in memory (the keyring's files are not what is measured). */
function benchKeys(): SealingKeys {
  const key: DataKey = { id: 1, key: randomBytes(KEY_BYTES) };
  const nonces = new NonceSource();
  return { current: () => key, key: (id) => (id === 1 ? key : undefined), nonce: () => nonces.next(), acceptPlaintext: false };
}

/** `entriesPerAppend` > 1: each append holds that many entries in one record, as one Ready of a busy leader does. */
async function benchWal(concurrency: number, keys?: SealingKeys, entriesPerAppend = 1): Promise<Result & { perFsync: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-bench-wal-'));
  try {
    const { wal } = await Wal.open(dir, keys ? { keys } : {});
    let index = 0;
    const data = new TextEncoder().encode(VALUE);
    const r = await drive(concurrency, async () => {
      const first = index + 1;
      index += entriesPerAppend;
      const entries = Array.from({ length: entriesPerAppend }, (_, k) => ({ index: first + k, term: 1, type: 'normal' as const, data }));
      await wal.append([
        { type: FrameType.Entries, entries },
        { type: FrameType.HardState, hardState: { term: 1, vote: 'm1', commit: index } },
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

function printTable(title: string, header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i] as number)).join('  ');
  console.log(title);
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}

/** Median nanoseconds per call of `fn` over `rounds` rounds of `n` calls each. */
function nsPerCall(fn: (i: number) => void, n: number, rounds = 7): number {
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn(i);
    samples.push(Number(process.hrtime.bigint() - t0) / n);
  }
  return percentile(samples, 50);
}

/** Sealed vs plaintext appends (fsync'd), plain first then sealed at each concurrency, same run. */
async function encryptionRows(): Promise<string[][]> {
  const rows: string[][] = [];
  for (const c of CONCURRENCIES) {
    const plain = await benchWal(c);
    const sealed = await benchWal(c, benchKeys());
    rows.push([
      String(c),
      fmt(plain.opsPerSec),
      fmt(sealed.opsPerSec),
      fmt(sealed.opsPerSec / plain.opsPerSec, 2),
      `${fmt(plain.p50, 2)}/${fmt(plain.p99, 2)}`,
      `${fmt(sealed.p50, 2)}/${fmt(sealed.p99, 2)}`,
    ]);
  }
  // The shape the Raft store writes under load: one Ready holding many proposals, one append.
  const plain = await benchWal(1, undefined, READY_ENTRIES);
  const sealed = await benchWal(1, benchKeys(), READY_ENTRIES);
  rows.push([
    `1 (${READY_ENTRIES}-entry Readys)`,
    fmt(plain.opsPerSec * READY_ENTRIES),
    fmt(sealed.opsPerSec * READY_ENTRIES),
    fmt(sealed.opsPerSec / plain.opsPerSec, 2),
    `${fmt(plain.p50, 2)}/${fmt(plain.p99, 2)}`,
    `${fmt(sealed.p50, 2)}/${fmt(sealed.p99, 2)}`,
  ]);
  return rows;
}

/** CPU only: a record's frame, and a snapshot file, encoded plain and sealed. */
function encodingRows(): string[][] {
  const keys = benchKeys();
  const data = new TextEncoder().encode(VALUE);
  const record = (i: number): WalRecord => ({ type: FrameType.Entries, entries: [{ index: i + 1, term: 1, type: 'normal', data }] });
  const plainRecord = nsPerCall((i) => encodeRecord(record(i), 1, 7, true), 20_000);
  const sealedRecord = nsPerCall(
    (i) => encodeSealedRecord(record(i), { segment: { seq: 0, firstIndex: 1, salt: 7 }, offset: 41, batch: 1, final: true }, keys.current(), keys.nonce()),
    20_000,
  );
  const snapshot = { metadata: { index: 100, term: 1, confState: { voters: ['m0'], learners: [] } }, data: randomBytes(16 * 1024 * 1024) };
  const mib = snapshot.data.length / (1024 * 1024);
  const plainSnap = nsPerCall(() => encodeSnapshot(snapshot), 1, 5);
  const sealedSnap = nsPerCall(() => encodeSnapshot(snapshot, { key: keys.current(), nonce: keys.nonce() }), 1, 5);
  return [
    ['WAL record (256 B entry)', `${fmt(plainRecord / 1000, 2)} µs`, `${fmt(sealedRecord / 1000, 2)} µs`, fmt(sealedRecord / plainRecord, 2)],
    [`snapshot file (${mib} MiB)`, `${fmt(plainSnap / 1e6, 1)} ms`, `${fmt(sealedSnap / 1e6, 1)} ms`, fmt(sealedSnap / plainSnap, 2)],
  ];
}

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
  printTable(`WAL append (256 B entry + hard state, fsync per batch) vs single-member etcd put, ${DURATION_MS} ms per cell`, header, rows);
  console.log('(etcd does much more per op than a WAL append: this ratio bounds what the WAL leaves for the rest of the Raft store.)');
  console.log();
  printTable(
    `Encryption at rest: WAL append sealed (AES-256-GCM per record) vs plaintext, same run, ${DURATION_MS} ms per cell`,
    ['conc', 'plain entries/s', 'sealed entries/s', 'sealed/plain', 'plain p50/p99 ms', 'sealed p50/p99 ms'],
    await encryptionRows(),
  );
  console.log();
  printTable('Encryption at rest, CPU only (median per call, no I/O)', ['what', 'plain', 'sealed', 'sealed/plain'], encodingRows());
}

await main();
