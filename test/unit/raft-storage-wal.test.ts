// The write-ahead log against a real filesystem (temp dirs): round trip, group commit, torn
// tails, corruption, overwritten suffixes, segment release, and a crash fuzz over the last write.
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { Entry, HardState } from '../../control-plane/raft/core/types.js';
import { nodeDurableFs, type DurableFs } from '../../control-plane/raft/storage/durable-fs.js';
import { FrameType, type WalRecord } from '../../control-plane/raft/storage/wal-codec.js';
import { WalCorruptionError, type WalState } from '../../control-plane/raft/storage/wal-replay.js';
import { Wal } from '../../control-plane/raft/storage/wal.js';

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-wal-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function entry(index: number, term: number, text = `e${index}`): Entry {
  return { index, term, type: 'normal', data: new TextEncoder().encode(text) };
}

function entries(lo: number, hi: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = lo; i <= hi; i++) out.push(entry(i, term));
  return out;
}

const ents = (es: Entry[]): WalRecord => ({ type: FrameType.Entries, entries: es });
const hs = (h: HardState): WalRecord => ({ type: FrameType.HardState, hardState: h });

function summary(state: WalState): { hs: HardState; snap: string; log: string[] } {
  return {
    hs: state.hardState,
    snap: `${state.snapshot.index}@${state.snapshot.term}`,
    log: state.entries.map((e) => `${e.index}@${e.term}:${new TextDecoder().decode(e.data)}`),
  };
}

/** Wraps the real filesystem to count fsyncs and record when they finish. */
function countingFs(log: string[]): { fs: DurableFs; syncs: () => number } {
  let syncs = 0;
  const fs: DurableFs = {
    ...nodeDurableFs,
    async openForWrite(path) {
      const file = await nodeDurableFs.openForWrite(path);
      return {
        writeAt: (b, p) => file.writeAt(b, p),
        async datasync() {
          await file.datasync();
          syncs++;
          log.push(`sync${syncs}`);
        },
        close: () => file.close(),
      };
    },
  };
  return { fs, syncs: () => syncs };
}

/** For tests that cut or garble bytes at the end of a file: no zeros after the last record. */
const EXACT = { preallocateBytes: 0 };

async function onlySegment(dir: string): Promise<string> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.wal'));
  if (names.length !== 1) throw new Error(`expected one segment, found ${names.join(', ')}`);
  return join(dir, names[0] as string);
}

test('wal: records survive a close and reopen', async (t) => {
  const dir = await tempDir(t);
  const { wal, state } = await Wal.open(dir);
  t.deepEqual(summary(state), { hs: { term: 0, vote: '', commit: 0 }, snap: '0@0', log: [] });
  await wal.append([ents(entries(1, 3, 1)), hs({ term: 1, vote: 'm1', commit: 2 })]);
  await wal.append([ents([{ index: 4, term: 2, type: 'conf-change', data: new Uint8Array([0, 255, 7]) }])]);
  await wal.append([hs({ term: 2, vote: 'ünï', commit: 4 })]);
  await wal.close();
  const reopened = await Wal.open(dir);
  t.is(reopened.truncated, undefined);
  t.deepEqual(reopened.state.hardState, { term: 2, vote: 'ünï', commit: 4 });
  t.deepEqual(
    reopened.state.entries.map((e) => [e.index, e.term, e.type]),
    [
      [1, 1, 'normal'],
      [2, 1, 'normal'],
      [3, 1, 'normal'],
      [4, 2, 'conf-change'],
    ],
  );
  t.deepEqual([...(reopened.state.entries[3]?.data ?? [])], [0, 255, 7]);
  await reopened.wal.close();
  await t.throwsAsync(() => reopened.wal.append([ents([entry(5, 2)])]), { name: 'WalClosedError' });
});

test('wal: group commit batches concurrent appends into few fsyncs, each resolved after its fsync', async (t) => {
  const dir = await tempDir(t);
  const events: string[] = [];
  const counting = countingFs(events);
  const { wal } = await Wal.open(dir, { fs: counting.fs });
  const n = 200;
  const appends: Array<Promise<void>> = [];
  for (let i = 1; i <= n; i++) {
    appends.push(wal.append([ents([entry(i, 1)])]).then(() => void events.push(`ack${i}`)));
  }
  await Promise.all(appends);
  t.true(counting.syncs() <= 5, `${counting.syncs()} fsyncs for ${n} concurrent appends`);
  t.is(wal.stats.batches, counting.syncs());
  // No append is acknowledged before some fsync happened.
  t.regex(events[0] as string, /^sync/);
  // Appends arriving while an fsync is in flight go into the next batch.
  const more: Array<Promise<void>> = [];
  for (let i = n + 1; i <= n + 50; i++) more.push(wal.append([ents([entry(i, 1)])]));
  await Promise.all(more);
  t.true(wal.stats.batches <= counting.syncs());
  await wal.close();
  const { state, wal: w2 } = await Wal.open(dir);
  t.is(state.entries.length, n + 50);
  t.deepEqual(
    state.entries.map((e) => e.index),
    Array.from({ length: n + 50 }, (_, i) => i + 1),
  );
  await w2.close();
});

test('wal: a torn record at the tail is cut off and recovery goes on', async (t) => {
  const dir = await tempDir(t);
  const { wal } = await Wal.open(dir, EXACT);
  await wal.append([ents(entries(1, 2, 1)), hs({ term: 1, vote: 'a', commit: 1 })]);
  await wal.append([ents(entries(3, 3, 1))]);
  await wal.close();
  const path = await onlySegment(dir);
  const good = await readFile(path);
  // A crash mid-write: the start of a frame header claiming more bytes than follow.
  const partial = Buffer.from([40, 0, 0, 0, FrameType.Entries, 3, 0, 0, 0, 1, 2]);
  await writeFile(path, Buffer.concat([good, partial]));
  const r = await Wal.open(dir);
  t.truthy(r.truncated);
  t.is(r.truncated?.offset, good.length);
  t.is(r.truncated?.droppedBytes, partial.length);
  t.deepEqual(
    r.state.entries.map((e) => e.index),
    [1, 2, 3],
  );
  t.is((await readFile(path)).length, good.length, 'the file is truncated on disk');
  await r.wal.append([ents(entries(4, 4, 1))]);
  await r.wal.close();
  const again = await Wal.open(dir);
  t.is(again.truncated, undefined);
  t.deepEqual(
    again.state.entries.map((e) => e.index),
    [1, 2, 3, 4],
  );
  await again.wal.close();
});

test('wal: the open segment is kept zero-filled ahead, so an append seldom grows the file', async (t) => {
  const dir = await tempDir(t);
  const { wal } = await Wal.open(dir);
  await wal.append([ents(entries(1, 2, 1))]);
  const path = await onlySegment(dir);
  const size = (await readFile(path)).length;
  t.true(size >= 256 * 1024, `segment is ${size} bytes`);
  for (let i = 3; i <= 20; i++) await wal.append([ents([entry(i, 1)])]);
  t.is((await readFile(path)).length, size, 'appends inside the zero-filled part do not grow the file');
  await wal.close();
  const r = await Wal.open(dir);
  t.is(r.truncated, undefined, 'the zeros are the unwritten rest of the file, not a torn write');
  t.deepEqual(
    r.state.entries.map((e) => e.index),
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
  await r.wal.append([ents([entry(21, 1)])]);
  await r.wal.close();
  const again = await Wal.open(dir);
  t.is(again.state.entries.length, 21);
  t.is((await readFile(path)).length, size, 'after a restart appends go on in the zeros');
  await again.wal.close();
});

test('wal: zeros after a complete batch end the log; zeros after an incomplete batch are a torn tail', async (t) => {
  const dir = await tempDir(t);
  const { wal } = await Wal.open(dir, EXACT);
  await wal.append([ents(entries(1, 2, 1))]);
  await wal.close();
  const path = await onlySegment(dir);
  const complete = await readFile(path);
  await writeFile(path, Buffer.concat([complete, Buffer.alloc(4096)]));
  const clean = await Wal.open(dir, EXACT);
  t.is(clean.truncated, undefined);
  t.is(clean.state.entries.length, 2);
  // A batch of two frames whose final frame never landed, then the zeros that were there before.
  await clean.wal.append([ents(entries(3, 3, 1)), hs({ term: 1, vote: 'a', commit: 3 })]);
  await clean.wal.close();
  const withBatch = await readFile(path);
  const firstFrameEnd = complete.length + 13 + withBatch.readUInt32LE(complete.length);
  await writeFile(path, Buffer.concat([withBatch.subarray(0, firstFrameEnd), Buffer.alloc(4096)]));
  const torn = await Wal.open(dir, EXACT);
  t.is(torn.truncated?.offset, complete.length);
  t.is(torn.state.entries.length, 2, 'the incomplete batch is dropped whole');
  await torn.wal.close();
});

test('wal: a zeroed frame header before an intact later batch is refused, not taken for the end', async (t) => {
  const dir = await tempDir(t);
  const { wal } = await Wal.open(dir);
  await wal.append([ents(entries(1, 2, 1))]);
  await wal.append([ents(entries(3, 4, 1))]);
  await wal.append([hs({ term: 1, vote: 'a', commit: 4 })]);
  await wal.close();
  const path = await onlySegment(dir);
  const buf = await readFile(path);
  const second = 41 + 13 + buf.readUInt32LE(41);
  buf.fill(0, second, second + 13);
  await writeFile(path, buf);
  await t.throwsAsync(() => Wal.open(dir), { instanceOf: WalCorruptionError, message: new RegExp(`byte ${second}: .*followed by an intact later write`) });
});

test('wal: sealed segments may end in zeros, but not in anything else after them', async (t) => {
  const dir = await tempDir(t);
  const { wal } = await Wal.open(dir, { segmentBytes: 300, preallocateBytes: 1024 });
  for (let i = 1; i <= 20; i++) await wal.append([ents([entry(i, 1, 'x'.repeat(40))])]);
  await wal.close();
  const r = await Wal.open(dir);
  t.is(r.state.entries.length, 20);
  await r.wal.close();
  const names = (await readdir(dir)).filter((n) => n.endsWith('.wal')).sort();
  t.true(names.length >= 3, names.join(' '));
  const first = join(dir, names[0] as string);
  const buf = await readFile(first);
  t.is(buf[buf.length - 1], 0, 'the sealed segment ends in zeros');
  buf[buf.length - 1] = 7;
  await writeFile(first, buf);
  await t.throwsAsync(() => Wal.open(dir), { instanceOf: WalCorruptionError, message: /sealed segment/ });
});

test('wal: damage before a later intact write is refused, naming file and offset', async (t) => {
  const dir = await tempDir(t);
  const { wal } = await Wal.open(dir);
  await wal.append([ents(entries(1, 3, 1))]);
  await wal.append([ents(entries(4, 6, 1))]);
  await wal.append([hs({ term: 1, vote: 'a', commit: 6 })]);
  await wal.close();
  const path = await onlySegment(dir);
  const buf = await readFile(path);
  // Flip one data byte of the first entries frame (just after the 41-byte segment header frame).
  const at = 41 + 13 + 30;
  buf[at] = (buf[at] as number) ^ 0xff;
  await writeFile(path, buf);
  const err = await t.throwsAsync(() => Wal.open(dir), { instanceOf: WalCorruptionError });
  t.true(err.message.includes(path), err.message);
  t.true(err.message.includes('byte 41'), err.message);
  t.true(err.message.includes('CRC mismatch'), err.message);
  t.is((await readFile(path)).length, buf.length, 'nothing is truncated when refusing');
});

test('wal: damage in a sealed segment is refused even at its end', async (t) => {
  const dir = await tempDir(t);
  const { wal } = await Wal.open(dir, { segmentBytes: 300, ...EXACT });
  for (let i = 1; i <= 20; i++) await wal.append([ents([entry(i, 1, 'x'.repeat(40))])]);
  await wal.close();
  const names = (await readdir(dir)).filter((n) => n.endsWith('.wal')).sort();
  t.true(names.length >= 3, names.join(' '));
  const first = join(dir, names[0] as string);
  const buf = await readFile(first);
  await writeFile(first, buf.subarray(0, buf.length - 3));
  const err = await t.throwsAsync(() => Wal.open(dir), { instanceOf: WalCorruptionError });
  t.regex(err.message, /sealed segment/);
  t.true(err.message.includes(first));
});

test('wal: a missing segment in the middle is refused', async (t) => {
  const dir = await tempDir(t);
  const { wal } = await Wal.open(dir, { segmentBytes: 300 });
  for (let i = 1; i <= 20; i++) await wal.append([ents([entry(i, 1, 'x'.repeat(40))])]);
  await wal.close();
  const names = (await readdir(dir)).filter((n) => n.endsWith('.wal')).sort();
  await rm(join(dir, names[1] as string));
  await t.throwsAsync(() => Wal.open(dir), { instanceOf: WalCorruptionError, message: /segment 1 is missing/ });
});

test('wal: entries appended at a lower index replace the old suffix (leader change)', async (t) => {
  const dir = await tempDir(t);
  const { wal } = await Wal.open(dir, { segmentBytes: 200 });
  await wal.append([ents(entries(1, 5, 1))]);
  await wal.append([ents([entry(3, 2, 'new3'), entry(4, 2, 'new4')]), hs({ term: 2, vote: 'b', commit: 2 })]);
  await wal.append([ents([entry(5, 3, 'newer5')])]);
  await wal.close();
  const r = await Wal.open(dir);
  t.deepEqual(summary(r.state).log, ['1@1:e1', '2@1:e2', '3@2:new3', '4@2:new4', '5@3:newer5']);
  await r.wal.close();
});

test('wal: a snapshot marker compacts the log and releases old segments', async (t) => {
  const dir = await tempDir(t);
  const { wal } = await Wal.open(dir, { segmentBytes: 400 });
  for (let i = 1; i <= 40; i++) await wal.append([ents([entry(i, 1, 'y'.repeat(30))]), hs({ term: 1, vote: 'a', commit: i })]);
  const before = wal.segmentNames().length;
  t.true(before >= 5, `${before} segments`);
  await wal.append([{ type: FrameType.Snapshot, snapshot: { index: 30, term: 1 } }]);
  await wal.releaseTo(30);
  const after = wal.segmentNames();
  t.true(after.length < before, `${after.length} < ${before}`);
  t.deepEqual((await readdir(dir)).filter((n) => n.endsWith('.wal')).sort(), after);
  for (let i = 41; i <= 45; i++) await wal.append([ents([entry(i, 2)])]);
  await wal.close();
  const r = await Wal.open(dir);
  t.deepEqual(r.state.snapshot, { index: 30, term: 1 });
  t.deepEqual(
    r.state.entries.map((e) => e.index),
    Array.from({ length: 15 }, (_, i) => 31 + i),
  );
  t.is(r.state.hardState.commit, 40);
  await r.wal.close();
});

test('wal: a hard state whose commit is beyond the recovered log is refused', async (t) => {
  const dir = await tempDir(t);
  const { wal } = await Wal.open(dir);
  await wal.append([ents(entries(1, 3, 1))]);
  await wal.append([hs({ term: 1, vote: '', commit: 9 })]);
  await wal.close();
  await t.throwsAsync(() => Wal.open(dir), { instanceOf: WalCorruptionError, message: /commit index 9 is beyond the last recovered entry 3/ });
});

test('wal: a failed fsync poisons the log; nothing more is acknowledged', async (t) => {
  const dir = await tempDir(t);
  let fail = false;
  const fs: DurableFs = {
    ...nodeDurableFs,
    async openForWrite(path) {
      const file = await nodeDurableFs.openForWrite(path);
      return {
        writeAt: (b, p) => file.writeAt(b, p),
        datasync: async () => {
          if (fail) throw new Error('EIO (injected)');
          await file.datasync();
        },
        close: () => file.close(),
      };
    },
  };
  const { wal } = await Wal.open(dir, { fs });
  await wal.append([ents(entries(1, 1, 1))]);
  fail = true;
  await t.throwsAsync(() => wal.append([ents(entries(2, 2, 1))]), { message: /EIO \(injected\)/ });
  fail = false;
  await t.throwsAsync(() => wal.append([ents(entries(2, 2, 1))]), { message: /no further writes/ });
  await wal.close();
});

// Crash fuzz: a crash during the last write leaves any prefix of it, or garbage in its place.
// Recovery must then yield exactly the state before that write (or after it, if it is complete).
test('wal: crash fuzz — every truncation of the last write and random garbage recover the acknowledged state', async (t) => {
  const dir = await tempDir(t);
  const { wal } = await Wal.open(dir, EXACT);
  await wal.append([ents(entries(1, 4, 1)), hs({ term: 1, vote: 'a', commit: 2 })]);
  await wal.append([ents(entries(5, 6, 2)), hs({ term: 2, vote: 'b', commit: 4 })]);
  await wal.close();
  const path = await onlySegment(dir);
  const acknowledged = await readFile(path);
  const { wal: w2 } = await Wal.open(dir, EXACT);
  await w2.append([ents([entry(5, 3, 'overwritten'), entry(6, 3, 'also'), entry(7, 3, 'x'.repeat(100))]), hs({ term: 3, vote: 'c', commit: 6 })]);
  await w2.close();
  const full = await readFile(path);
  const expectedBefore = summary((await Wal.open(dir).then(async (r) => (await r.wal.close(), r))).state);
  await writeFile(path, acknowledged);
  const before = await Wal.open(dir);
  await before.wal.close();
  const acked = summary(before.state);
  t.notDeepEqual(acked, expectedBefore);

  const scratch = await tempDir(t);
  const scratchPath = join(scratch, path.slice(dir.length + 1));
  let seed = 12345;
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const cases: Array<{ what: string; bytes: Buffer; expect: ReturnType<typeof summary> }> = [];
  for (let len = acknowledged.length; len <= full.length; len++) {
    cases.push({ what: `truncated to ${len}`, bytes: full.subarray(0, len), expect: len === full.length ? expectedBefore : acked });
  }
  for (let i = 0; i < 100; i++) {
    const garbled = Buffer.from(full);
    const from = acknowledged.length + Math.floor(random() * (full.length - acknowledged.length));
    const to = from + 1 + Math.floor(random() * (full.length - from));
    for (let p = from; p < to; p++) garbled[p] = (garbled[p] as number) ^ (1 + Math.floor(random() * 255));
    const cut = to + Math.floor(random() * (full.length - to + 1));
    cases.push({ what: `garbage in [${from}, ${to}) cut at ${cut}`, bytes: garbled.subarray(0, cut), expect: acked });
  }
  // Each shape also as it lies in a preallocated segment: the zeros that were there before the write follow it.
  const padding = Buffer.alloc(4096);
  for (const c of cases) {
    for (const [layout, bytes] of [
      ['', c.bytes],
      [', zeros after', Buffer.concat([c.bytes, padding])],
    ] as const) {
      await writeFile(scratchPath, bytes);
      const r = await Wal.open(scratch, EXACT);
      await r.wal.close();
      const got = summary(r.state);
      if (JSON.stringify(got) !== JSON.stringify(c.expect)) {
        t.fail(`${c.what}${layout}: recovered ${JSON.stringify(got)}`);
        return;
      }
    }
  }
  t.pass(`${cases.length * 2} crash shapes recovered`);
});

test('wal: a deferred append costs no fsync of its own; it lands with the next synced append, or at close', async (t) => {
  const dir = await tempDir(t);
  const log: string[] = [];
  const { fs, syncs } = countingFs(log);
  const { wal } = await Wal.open(dir, { fs });
  await wal.append([ents(entries(1, 2, 1))]);
  const before = syncs();
  await wal.append([hs({ term: 1, vote: 'a', commit: 1 })], { sync: false });
  await new Promise((r) => setTimeout(r, 20));
  t.is(syncs(), before, 'no fsync for a deferred record alone');
  await wal.append([ents(entries(3, 3, 1))]);
  t.is(syncs(), before + 1, 'one fsync covers the deferred record and the synced one');
  await wal.append([hs({ term: 1, vote: 'a', commit: 3 })], { sync: false });
  await wal.close();
  const reopened = await Wal.open(dir);
  t.deepEqual(summary(reopened.state), { hs: { term: 1, vote: 'a', commit: 3 }, snap: '0@0', log: ['1@1:e1', '2@1:e2', '3@1:e3'] });
  await reopened.wal.close();
});
