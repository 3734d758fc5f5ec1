// DiskRaftStorage and snapshot files on a real filesystem (temp dirs).
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { LogCompactedError, LogUnavailableError, type Entry, type Snapshot } from '../../control-plane/raft/core/types.js';
import { DiskRaftStorage } from '../../control-plane/raft/storage/disk-storage.js';
import { SnapshotCorruptionError, Snapshotter, snapshotFileName } from '../../control-plane/raft/storage/snapshotter.js';

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-raftdisk-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function entry(index: number, term: number, text = `e${index}`): Entry {
  return { index, term, type: 'normal', data: new TextEncoder().encode(text) };
}

function range(lo: number, hi: number, term: number, text?: string): Entry[] {
  const out: Entry[] = [];
  for (let i = lo; i <= hi; i++) out.push(entry(i, term, text));
  return out;
}

const ids = (es: Entry[]): string[] => es.map((e) => `${e.index}@${e.term}`);
const bootstrap = { voters: ['m1', 'm2', 'm3'], learners: [] };

test('disk storage: a fresh directory holds the bootstrap configuration durably', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskRaftStorage.open(dir, { bootstrap });
  t.deepEqual(s.initialState(), { hardState: { term: 0, vote: '', commit: 0 }, confState: bootstrap });
  t.is(s.firstIndex(), 1);
  t.is(s.lastIndex(), 0);
  t.is(s.term(0), 0);
  t.deepEqual(s.snapshot().metadata, { index: 0, term: 0, confState: bootstrap });
  await s.close();
  const again = await DiskRaftStorage.open(dir, { bootstrap: { voters: ['other'], learners: [] } });
  t.deepEqual(again.initialState().confState, bootstrap, 'a restart cannot change the bootstrap configuration');
  await again.close();
});

test('disk storage: saved entries and hard state are served and survive a restart', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskRaftStorage.open(dir, { bootstrap });
  await s.save({ entries: range(1, 10, 1, 'x'.repeat(10)), hardState: { term: 1, vote: 'm1', commit: 5 } });
  t.is(s.lastIndex(), 10);
  t.is(s.term(7), 1);
  t.deepEqual(ids(s.entries(3, 6, 1000)), ['3@1', '4@1', '5@1']);
  t.deepEqual(ids(s.entries(3, 9, 25)), ['3@1', '4@1'], 'about maxBytes of data');
  t.deepEqual(ids(s.entries(3, 9, 0)), ['3@1'], 'at least one entry');
  t.throws(() => s.entries(0, 2, 100), { instanceOf: LogCompactedError });
  t.throws(() => s.entries(5, 12, 100), { instanceOf: LogUnavailableError });
  t.throws(() => s.term(11), { instanceOf: LogUnavailableError });
  await s.close();
  const r = await DiskRaftStorage.open(dir);
  t.deepEqual(r.initialState().hardState, { term: 1, vote: 'm1', commit: 5 });
  t.deepEqual(ids(r.entries(1, 11, Infinity)), ids(range(1, 10, 1)));
  t.is(new TextDecoder().decode(r.entries(4, 5, 100)[0]?.data), 'x'.repeat(10));
  await r.close();
});

test('disk storage: entries at a lower index replace the suffix; gaps are refused before anything is written', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskRaftStorage.open(dir, { bootstrap });
  await s.save({ entries: range(1, 5, 1) });
  await s.save({ entries: range(3, 4, 2), hardState: { term: 2, vote: 'm2', commit: 2 } });
  t.deepEqual(ids(s.entries(1, 5, Infinity)), ['1@1', '2@1', '3@2', '4@2']);
  await t.throwsAsync(() => s.save({ entries: [entry(7, 2)] }), { message: /leaves a gap after 4/ });
  await t.throwsAsync(() => s.save({ entries: [entry(1, 2), entry(3, 2)] }), { message: /not contiguous/ });
  await s.close();
  const r = await DiskRaftStorage.open(dir);
  t.deepEqual(ids(r.entries(1, 5, Infinity)), ['1@1', '2@1', '3@2', '4@2']);
  await r.close();
});

test('disk storage: compaction drops covered entries, keeps a few snapshot files and releases WAL segments', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskRaftStorage.open(dir, { bootstrap, segmentBytes: 1024, keepSnapshots: 2 });
  for (let i = 1; i <= 60; i++) await s.save({ entries: [entry(i, 1, 'z'.repeat(50))], hardState: { term: 1, vote: 'm1', commit: i } });
  const segmentsBefore = s.walSegments().length;
  t.true(segmentsBefore >= 4, `${segmentsBefore} segments`);
  for (const at of [20, 35, 50]) {
    await s.compact(at, { voters: ['m1', 'm2'], learners: ['m4'] }, new TextEncoder().encode(`state@${at}`));
  }
  t.is(s.firstIndex(), 51);
  t.is(s.term(50), 1);
  t.throws(() => s.term(49), { instanceOf: LogCompactedError });
  t.throws(() => s.entries(50, 52, 100), { instanceOf: LogCompactedError });
  t.deepEqual(ids(s.entries(51, 53, 1000)), ['51@1', '52@1']);
  t.true(s.walSegments().length < segmentsBefore);
  t.deepEqual((await readdir(join(dir, 'snap'))).sort(), [snapshotFileName(35, 1), snapshotFileName(50, 1)]);
  await s.close();
  const r = await DiskRaftStorage.open(dir);
  t.is(r.firstIndex(), 51);
  t.is(r.lastIndex(), 60);
  t.is(new TextDecoder().decode(r.snapshot().data), 'state@50');
  t.deepEqual(r.initialState().confState, { voters: ['m1', 'm2'], learners: ['m4'] });
  t.is(r.initialState().hardState.commit, 60);
  await r.close();
});

test('disk storage: a snapshot from the leader that does not match the log replaces it', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskRaftStorage.open(dir, { bootstrap });
  await s.save({ entries: range(1, 5, 1) });
  const snap: Snapshot = { metadata: { index: 100, term: 4, confState: bootstrap }, data: new Uint8Array([1, 2, 3]) };
  await s.save({ snapshot: snap, entries: [], hardState: { term: 4, vote: '', commit: 100 } });
  t.is(s.firstIndex(), 101);
  t.is(s.lastIndex(), 100);
  t.is(s.term(100), 4);
  await s.save({ entries: range(101, 102, 4) });
  await s.close();
  const r = await DiskRaftStorage.open(dir);
  t.deepEqual(ids(r.entries(101, 103, Infinity)), ['101@4', '102@4']);
  t.deepEqual([...r.snapshot().data], [1, 2, 3]);
  await r.close();
});

test('disk storage: a snapshot that matches the log keeps the entries after it', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskRaftStorage.open(dir, { bootstrap });
  await s.save({ entries: range(1, 8, 2) });
  await s.save({ snapshot: { metadata: { index: 5, term: 2, confState: bootstrap }, data: new Uint8Array() }, entries: [] });
  t.deepEqual(ids(s.entries(6, 9, Infinity)), ['6@2', '7@2', '8@2']);
  await s.close();
  const r = await DiskRaftStorage.open(dir);
  t.is(r.firstIndex(), 6);
  t.is(r.lastIndex(), 8);
  await r.close();
});

test('disk storage: a damaged snapshot file is refused with its name', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskRaftStorage.open(dir, { bootstrap });
  await s.save({ entries: range(1, 5, 1) });
  await s.compact(3, bootstrap, new TextEncoder().encode('state'));
  await s.close();
  const file = join(dir, 'snap', snapshotFileName(3, 1));
  const buf = await readFile(file);
  buf[buf.length - 1] = (buf[buf.length - 1] as number) ^ 1;
  await writeFile(file, buf);
  const err = await t.throwsAsync(() => DiskRaftStorage.open(dir), { instanceOf: SnapshotCorruptionError });
  t.true(err.message.includes(file));
  t.regex(err.message, /CRC mismatch/);
});

test('disk storage: a snapshot file whose WAL record never landed is ignored and removed', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskRaftStorage.open(dir, { bootstrap });
  await s.save({ entries: range(1, 5, 1) });
  await s.close();
  // A crash after the snapshot file was written but before its WAL marker.
  await new Snapshotter(join(dir, 'snap')).save({ metadata: { index: 4, term: 1, confState: bootstrap }, data: new Uint8Array() });
  const r = await DiskRaftStorage.open(dir);
  t.is(r.firstIndex(), 1);
  t.is(r.lastIndex(), 5);
  t.is(r.recovery.length, 1);
  t.false((await readdir(join(dir, 'snap'))).includes(snapshotFileName(4, 1)));
  await r.close();
});

test('disk storage: concurrent saves share fsyncs and land in call order', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskRaftStorage.open(dir, { bootstrap });
  const saves: Array<Promise<void>> = [];
  for (let i = 1; i <= 100; i++) saves.push(s.save({ entries: [entry(i, 1)], hardState: { term: 1, vote: 'm1', commit: i - 1 } }));
  await Promise.all(saves);
  t.true(s.walStats().batches <= 5, `${s.walStats().batches} batches for 100 saves`);
  t.is(s.lastIndex(), 100);
  t.is(s.initialState().hardState.commit, 99);
  await s.close();
});
