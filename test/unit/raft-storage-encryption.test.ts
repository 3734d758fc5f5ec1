// Encryption at rest on a real filesystem (temp dirs): the encrypted WAL (nothing in clear, tampered
// or swapped records refused by index, torn tails still cut), the keyring beside the data (modes,
// missing or wrong keys), an older version's plaintext directory encrypted at open, data key
// rotation at a snapshot, and tampered snapshot files.
import { randomBytes } from 'node:crypto';
import { chmod, cp, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import test, { type ExecutionContext } from 'ava';
import type { Entry, HardState } from '../../control-plane/raft/core/types.js';
import { DiskRaftStorage } from '../../control-plane/raft/storage/disk-storage.js';
import { nodeDurableFs, type DurableFs } from '../../control-plane/raft/storage/durable-fs.js';
import { KeyringError } from '../../control-plane/raft/storage/keyring.js';
import { KEY_BYTES, NONCE_BYTES, type DataKey, type SealingKeys } from '../../control-plane/raft/storage/sealing.js';
import { SnapshotCorruptionError, Snapshotter, snapshotFileName } from '../../control-plane/raft/storage/snapshotter.js';
import { FRAME_HEADER_BYTES, FrameType, decodeSegmentHeader, readFrame, segmentFileName, type WalRecord } from '../../control-plane/raft/storage/wal-codec.js';
import { WalCorruptionError, type WalState } from '../../control-plane/raft/storage/wal-replay.js';
import { Wal } from '../../control-plane/raft/storage/wal.js';
import { filesUnder } from '../helpers/files-under.js';

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-walenc-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const MARK = 'PLAINTEXT-MARK';
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const entry = (index: number, term: number, text = `${MARK}-${index}`): Entry => ({ index, term, type: 'normal', data: enc(text) });
function entries(lo: number, hi: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = lo; i <= hi; i++) out.push(entry(i, term));
  return out;
}
const ents = (es: Entry[]): WalRecord => ({ type: FrameType.Entries, entries: es });
const hs = (h: HardState): WalRecord => ({ type: FrameType.HardState, hardState: h });
const log = (state: WalState): string[] => state.entries.map((e) => `${e.index}@${e.term}:${new TextDecoder().decode(e.data)}`);

/** Keys held in memory: for WAL tests below the keyring. `current` can be switched. */
function memoryKeys(...keys: DataKey[]): SealingKeys & { use(id: number): void } {
  let current = keys[0] as DataKey;
  return {
    current: () => current,
    key: (id) => keys.find((k) => k.id === id),
    nonce: () => randomBytes(NONCE_BYTES),
    acceptPlaintext: false,
    use(id) {
      current = keys.find((k) => k.id === id) as DataKey;
    },
  };
}
const dataKey = (id: number): DataKey => ({ id, key: randomBytes(KEY_BYTES) });

interface FrameAt {
  offset: number;
  type: FrameType;
  batch: number;
  end: number;
}

/** The frames of a segment file, and its salt. */
function framesOf(buf: Buffer): { salt: number; keyId: number; frames: FrameAt[] } {
  const first = readFrame(buf, 0, 0);
  if (!first.ok) throw new Error(first.reason);
  const header = decodeSegmentHeader(first.frame.payload);
  const frames: FrameAt[] = [];
  let offset = first.frame.end;
  for (;;) {
    const r = readFrame(buf, offset, header.salt);
    if (!r.ok) break;
    frames.push({ offset, type: r.frame.type, batch: r.frame.batch, end: r.frame.end });
    offset = r.frame.end;
  }
  return { salt: header.salt, keyId: header.keyId, frames };
}

/** Recomputes a frame's CRC, as anyone who read the segment's salt can: the CRC is no secret. */
function redoCrc(buf: Buffer, f: FrameAt, salt: number): void {
  buf.writeUInt32LE(crc32(buf.subarray(f.offset + FRAME_HEADER_BYTES, f.end), crc32(buf.subarray(f.offset + 4, f.offset + 9), salt)), f.offset + 9);
}

async function onlySegment(dir: string): Promise<string> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.wal'));
  if (names.length !== 1) throw new Error(`expected one segment, found ${names.join(', ')}`);
  return join(dir, names[0] as string);
}

async function filesHolding(dir: string, needle: string): Promise<string[]> {
  const hits: string[] = [];
  for (const f of await filesUnder(dir)) if ((await readFile(f)).includes(Buffer.from(needle))) hits.push(f);
  return hits;
}

const EXACT = { preallocateBytes: 0 };

/** Three batches: entries 1..3 | entries 4..6 | hard state. */
async function threeBatches(dir: string, keys: SealingKeys): Promise<void> {
  const { wal } = await Wal.open(dir, { keys, ...EXACT });
  await wal.append([ents(entries(1, 3, 1))]);
  await wal.append([ents(entries(4, 6, 1))]);
  await wal.append([hs({ term: 1, vote: 'a', commit: 6 })]);
  await wal.close();
}

// ------------------------------------------------------------------ the encrypted WAL

test('encrypted wal: records round-trip, the header names the key, and no entry byte is in clear', async (t) => {
  const dir = await tempDir(t);
  const keys = memoryKeys(dataKey(5));
  const { wal } = await Wal.open(dir, { keys });
  await wal.append([ents(entries(1, 3, 1)), hs({ term: 1, vote: 'm1', commit: 2 })]);
  await wal.append([ents([{ index: 4, term: 2, type: 'conf-change', data: new Uint8Array([0, 255, 7]) }])]);
  await wal.close();
  const buf = await readFile(await onlySegment(dir));
  t.is(framesOf(buf).keyId, 5);
  t.false(buf.includes(Buffer.from(MARK)), 'entry data is not in the segment in clear');
  t.false(buf.includes(Buffer.from('m1')), 'nor is the vote');
  const r = await Wal.open(dir, { keys });
  t.deepEqual(log(r.state).slice(0, 3), [`1@1:${MARK}-1`, `2@1:${MARK}-2`, `3@1:${MARK}-3`]);
  t.deepEqual([...(r.state.entries[3]?.data ?? [])], [0, 255, 7]);
  t.deepEqual(r.state.hardState, { term: 1, vote: 'm1', commit: 2 });
  await r.wal.close();
  await t.throwsAsync(() => Wal.open(dir), { instanceOf: WalCorruptionError, message: /encrypted with data key 5, and no keys were given/ });
  await t.throwsAsync(() => Wal.open(dir, { keys: memoryKeys(dataKey(6)) }), { message: /data key 5, which the keyring does not hold/ });
  await t.throwsAsync(
    () => Wal.open(dir, { keys: memoryKeys(dataKey(5)) }),
    { message: /record of entries 1\.\.3 .* does not open with data key 5/ },
    'another key under the same id',
  );
});

test('encrypted wal: a tampered record (CRC redone) is refused naming its index, in an earlier batch and in the last (never a torn tail)', async (t) => {
  const dir = await tempDir(t);
  const keys = memoryKeys(dataKey(1));
  await threeBatches(dir, keys);
  const path = await onlySegment(dir);
  const good = await readFile(path);
  const { salt, frames } = framesOf(good);
  t.deepEqual(
    frames.map((f) => [f.type, f.batch]),
    [
      [FrameType.Entries, 1],
      [FrameType.Entries, 2],
      [FrameType.HardState, 3],
    ],
  );
  const second = frames[1] as FrameAt;
  const bad = Buffer.from(good);
  bad[second.end - 20] = (bad[second.end - 20] as number) ^ 0x01; // inside the ciphertext
  redoCrc(bad, second, salt);
  await writeFile(path, bad);
  const err = await t.throwsAsync(() => Wal.open(dir, { keys }), { instanceOf: WalCorruptionError });
  t.regex(err.message, new RegExp(`byte ${second.offset}: record of entries 4\\.\\.6 \\(last term 1\\) does not open with data key 1`));
  t.regex(err.message, /not decoded/);

  // The last batch: a frame whose CRC matches was written whole, so a failed seal is no torn write.
  const last = frames[2] as FrameAt;
  const badLast = Buffer.from(good);
  badLast[last.end - 1] = (badLast[last.end - 1] as number) ^ 0x80; // the tag
  redoCrc(badLast, last, salt);
  await writeFile(path, badLast);
  await t.throwsAsync(() => Wal.open(dir, { keys }), { instanceOf: WalCorruptionError, message: /hard state record \(term 1, commit 6\) does not open/ });
  t.is((await readFile(path)).length, good.length, 'nothing was truncated');
});

test('encrypted wal: a flipped byte without its CRC: corruption naming the claimed index before a later write, a torn tail in the last batch', async (t) => {
  const dir = await tempDir(t);
  const keys = memoryKeys(dataKey(1));
  await threeBatches(dir, keys);
  const path = await onlySegment(dir);
  const good = await readFile(path);
  const { frames } = framesOf(good);
  const first = frames[0] as FrameAt;
  const bad = Buffer.from(good);
  bad[first.end - 20] = (bad[first.end - 20] as number) ^ 0x01;
  await writeFile(path, bad);
  const err = await t.throwsAsync(() => Wal.open(dir, { keys }), { instanceOf: WalCorruptionError });
  t.regex(err.message, new RegExp(`byte ${first.offset}: CRC mismatch \\(its clear label, unverified, names the record of entries 1\\.\\.3`));
  t.regex(err.message, /followed by an intact later write/);

  const last = frames[2] as FrameAt;
  const torn = Buffer.from(good);
  torn[last.end - 3] = (torn[last.end - 3] as number) ^ 0x01;
  await writeFile(path, torn);
  const r = await Wal.open(dir, { keys });
  t.is(r.truncated?.offset, last.offset, 'the existing rule: damage in the last batch is a torn write');
  t.is(r.state.entries.length, 6);
  t.is(r.state.hardState.commit, 0);
  await r.wal.close();
});

test('encrypted wal: two records swapped are refused, whether whole frames or their payloads (CRC redone)', async (t) => {
  const dir = await tempDir(t);
  const keys = memoryKeys(dataKey(1));
  await threeBatches(dir, keys);
  const path = await onlySegment(dir);
  const good = await readFile(path);
  const { salt, frames } = framesOf(good);
  const [a, b] = frames as [FrameAt, FrameAt];
  t.is(a.end - a.offset, b.end - b.offset, 'both entries frames have the same size');
  const size = a.end - a.offset;

  const wholeSwap = Buffer.from(good);
  good.copy(wholeSwap, a.offset, b.offset, b.end);
  good.copy(wholeSwap, b.offset, a.offset, a.end);
  await writeFile(path, wholeSwap);
  await t.throwsAsync(() => Wal.open(dir, { keys }), { instanceOf: WalCorruptionError });

  // Payloads swapped under the frame headers (batch numbers stay in order), CRCs redone: each
  // record's associated data names its offset and batch, so it does not open in the other's place.
  const payloadSwap = Buffer.from(good);
  good.copy(payloadSwap, a.offset + FRAME_HEADER_BYTES, b.offset + FRAME_HEADER_BYTES, b.end);
  good.copy(payloadSwap, b.offset + FRAME_HEADER_BYTES, a.offset + FRAME_HEADER_BYTES, a.end);
  redoCrc(payloadSwap, a, salt);
  redoCrc(payloadSwap, { ...b, end: b.offset + size }, salt);
  await writeFile(path, payloadSwap);
  await t.throwsAsync(() => Wal.open(dir, { keys }), {
    instanceOf: WalCorruptionError,
    message: new RegExp(`byte ${a.offset}: record of entries 4\\.\\.6 .* does not open`),
  });
});

test('encrypted wal: a segment header edited to start at another index (file renamed to match) is refused', async (t) => {
  const dir = await tempDir(t);
  const keys = memoryKeys(dataKey(1));
  await threeBatches(dir, keys);
  const path = await onlySegment(dir);
  const buf = await readFile(path);
  // Header frame payload: magic, version, seq (u64 at 8), firstIndex (u64 at 16), salt, key id.
  buf.writeUInt32LE(2, FRAME_HEADER_BYTES + 16);
  const header: FrameAt = { offset: 0, type: FrameType.SegmentHeader, batch: 0, end: FRAME_HEADER_BYTES + 32 };
  redoCrc(buf, header, 0);
  await rm(path);
  await writeFile(join(dir, segmentFileName(0, 2)), buf);
  await t.throwsAsync(() => Wal.open(dir, { keys }), { instanceOf: WalCorruptionError, message: /record of entries 1\.\.3 .* does not open/ });
});

test('encrypted wal: crash fuzz — every truncation of the last write recovers the acknowledged state', async (t) => {
  const dir = await tempDir(t);
  const keys = memoryKeys(dataKey(1));
  const { wal } = await Wal.open(dir, { keys, ...EXACT });
  await wal.append([ents(entries(1, 4, 1)), hs({ term: 1, vote: 'a', commit: 2 })]);
  await wal.close();
  const path = await onlySegment(dir);
  const acknowledged = await readFile(path);
  const acked = log((await Wal.open(dir, { keys, ...EXACT }).then(async (r) => (await r.wal.close(), r))).state);
  const { wal: w2 } = await Wal.open(dir, { keys, ...EXACT });
  await w2.append([ents([entry(5, 2), entry(6, 2)]), hs({ term: 2, vote: 'b', commit: 6 })]);
  await w2.close();
  const full = await readFile(path);
  for (let len = acknowledged.length; len < full.length; len++) {
    for (const tail of [Buffer.alloc(0), Buffer.alloc(512)]) {
      await writeFile(path, Buffer.concat([full.subarray(0, len), tail]));
      const r = await Wal.open(dir, { keys, ...EXACT });
      await r.wal.close();
      if (JSON.stringify(log(r.state)) !== JSON.stringify(acked)) {
        t.fail(`cut at ${len}${tail.length ? ' + zeros' : ''}: recovered ${log(r.state).join(' ')}`);
        return;
      }
    }
  }
  t.pass();
});

test('encrypted wal: a plaintext segment among encrypted ones is refused as a downgrade, unless plaintext is being migrated', async (t) => {
  const dir = await tempDir(t);
  const { wal } = await Wal.open(dir);
  await wal.append([ents(entries(1, 2, 1))]);
  await wal.close();
  const keys = memoryKeys(dataKey(1));
  await t.throwsAsync(() => Wal.open(dir, { keys }), { instanceOf: WalCorruptionError, message: /plaintext segment .* replaced or downgraded/ });
  const migrating = { ...keys, acceptPlaintext: true };
  const r = await Wal.open(dir, { keys: migrating });
  t.is(r.state.entries.length, 2);
  // Nothing is appended to a plaintext segment: the next write starts an encrypted one.
  await r.wal.append([ents(entries(3, 3, 1))]);
  t.deepEqual(
    [...r.wal.segmentKeyIds()].sort((x, y) => x - y),
    [0, 1],
  );
  await r.wal.close();
});

test('encrypted wal: a new current key starts a new segment at the next write; older segments open with their own key', async (t) => {
  const dir = await tempDir(t);
  const keys = memoryKeys(dataKey(1), dataKey(2));
  const { wal } = await Wal.open(dir, { keys });
  await wal.append([ents(entries(1, 3, 1))]);
  keys.use(2);
  await wal.append([ents(entries(4, 5, 1)), hs({ term: 1, vote: 'a', commit: 5 })]);
  t.is(wal.stats.segmentsCut, 1);
  t.deepEqual([...wal.segmentKeyIds()], [1, 2]);
  await wal.close();
  t.deepEqual(
    (await Wal.keyIdsOnDisk(dir)).sort((x, y) => x - y),
    [1, 2],
  );
  const r = await Wal.open(dir, { keys });
  t.deepEqual(
    r.state.entries.map((e) => e.index),
    [1, 2, 3, 4, 5],
  );
  await r.wal.close();
});

// ------------------------------------------------------------------ disk storage and its keyring

const bootstrap = { voters: ['m1'], learners: [] };

test('encrypted storage: keys beside the data with private modes; no file holds an entry or the state in clear; all reads back', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskRaftStorage.open(dir, { bootstrap, segmentBytes: 2048 });
  for (let i = 1; i <= 40; i++) await s.save({ entries: [entry(i, 1)], hardState: { term: 1, vote: 'm1', commit: i } });
  await s.compact(25, bootstrap, enc(`${MARK}-state`));
  await s.close();
  t.is((await stat(join(dir, 'keys'))).mode & 0o777, 0o700);
  t.is((await stat(join(dir, 'keys', 'kek'))).mode & 0o777, 0o600);
  t.is((await stat(join(dir, 'keys', 'deks'))).mode & 0o777, 0o600);
  t.deepEqual(await filesHolding(dir, MARK), []);
  const r = await DiskRaftStorage.open(dir);
  t.is(new TextDecoder().decode(r.snapshot().data), `${MARK}-state`);
  t.is(new TextDecoder().decode(r.entries(33, 34, 100)[0]?.data), `${MARK}-33`);
  t.deepEqual(r.recovery, []);
  await r.close();
});

test('encrypted storage: a missing or wrong KEK, a lost keyring, an edited keyring or a key file others may read is refused', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskRaftStorage.open(dir, { bootstrap });
  await s.save({ entries: entries(1, 3, 1) });
  await s.close();
  const keys = join(dir, 'keys');
  const saved = await tempDir(t);
  await cp(keys, saved, { recursive: true });
  const restore = async (): Promise<void> => {
    await rm(keys, { recursive: true, force: true });
    await cp(saved, keys, { recursive: true });
  };

  await rm(join(keys, 'kek'));
  await t.throwsAsync(() => DiskRaftStorage.open(dir), { instanceOf: KeyringError, message: /key-encryption key is missing/ });
  await restore();
  await t.throwsAsync(() => DiskRaftStorage.open(dir, { kek: randomBytes(KEY_BYTES) }), {
    instanceOf: KeyringError,
    message: /wrong KEK, or the file was edited/,
  });

  const deks = join(keys, 'deks');
  const edited = (await readFile(deks, 'utf8')).replace('"acceptPlaintext": false', '"acceptPlaintext": true');
  await writeFile(deks, edited, { mode: 0o600 });
  await t.throwsAsync(() => DiskRaftStorage.open(dir), { instanceOf: KeyringError, message: /the file was edited/ });
  await restore();

  await rm(deks);
  await t.throwsAsync(() => DiskRaftStorage.open(dir), { instanceOf: KeyringError, message: /deks: is missing, but the Raft log or snapshots are encrypted/ });
  await restore();

  await chmod(join(keys, 'kek'), 0o644);
  await t.throwsAsync(() => DiskRaftStorage.open(dir), { instanceOf: KeyringError, message: /mode 0644.*chmod 600/ });
  await restore();
  await chmod(keys, 0o755);
  await t.throwsAsync(() => DiskRaftStorage.open(dir), { instanceOf: KeyringError, message: /directory has mode 0755/ });
  await chmod(keys, 0o700);

  const ok = await DiskRaftStorage.open(dir);
  t.is(ok.lastIndex(), 3);
  await ok.close();
});

test('encrypted storage: a KEK given from outside is used instead of a file beside the data', async (t) => {
  const dir = await tempDir(t);
  const kek = randomBytes(KEY_BYTES);
  const s = await DiskRaftStorage.open(dir, { bootstrap, kek });
  await s.save({ entries: entries(1, 2, 1) });
  await s.close();
  t.deepEqual((await readdir(join(dir, 'keys'))).sort(), ['deks']);
  await t.throwsAsync(() => DiskRaftStorage.open(dir), { instanceOf: KeyringError, message: /key-encryption key is missing/ });
  const r = await DiskRaftStorage.open(dir, { kek });
  t.is(r.lastIndex(), 2);
  await r.close();
});

/** The layout an older version wrote in `dir`: plaintext snapshots (0, 10, 20) and WAL segments (entries 1..30), no keys/. */
async function olderVersionDirectory(dir: string): Promise<Snapshotter> {
  const snap = new Snapshotter(join(dir, 'snap'));
  const walDir = join(dir, 'wal');
  await mkdir(walDir);
  await mkdir(join(dir, 'snap'));
  await snap.save({ metadata: { index: 0, term: 0, confState: bootstrap }, data: new Uint8Array() });
  const { wal } = await Wal.open(walDir, { segmentBytes: 400 });
  for (let i = 1; i <= 30; i++) await wal.append([ents([entry(i, 1)]), hs({ term: 1, vote: 'm1', commit: i })]);
  await snap.save({ metadata: { index: 10, term: 1, confState: bootstrap }, data: enc(`${MARK}-state10`) });
  await wal.append([{ type: FrameType.Snapshot, snapshot: { index: 10, term: 1 } }]);
  await snap.save({ metadata: { index: 20, term: 1, confState: bootstrap }, data: enc(`${MARK}-state20`) });
  await wal.append([{ type: FrameType.Snapshot, snapshot: { index: 20, term: 1 } }]);
  await wal.close();
  return snap;
}

test("encrypted storage: an older version's plaintext directory is read once and encrypted at open", async (t) => {
  const dir = await tempDir(t);
  const snap = await olderVersionDirectory(dir);
  const walDir = join(dir, 'wal');
  t.true((await readdir(walDir)).length >= 3, 'several plaintext segments');
  t.true((await filesHolding(dir, MARK)).length > 3);

  const s = await DiskRaftStorage.open(dir);
  t.is(s.firstIndex(), 21);
  t.is(s.lastIndex(), 30);
  t.is(new TextDecoder().decode(s.snapshot().data), `${MARK}-state20`);
  t.is(new TextDecoder().decode(s.entries(27, 28, 100)[0]?.data), `${MARK}-27`);
  t.is(s.initialState().hardState.commit, 30);
  t.is(s.recovery.length, 1);
  const note = s.recovery[0] as string;
  t.regex(note, /^encryption at rest: /);
  t.regex(note, /encrypted snapshot 0000000000000014-0000000000000001\.snap/);
  t.regex(note, /deleted older plaintext snapshot 000000000000000a-0000000000000001\.snap/);
  t.regex(note, /rewrote the plaintext WAL \(.*\) as [0-9a-f-]+\.wal, encrypted/);
  await s.save({ entries: [entry(31, 1)], hardState: { term: 1, vote: 'm1', commit: 31 } });
  await s.close();

  t.deepEqual(await filesHolding(dir, MARK), [], 'no plaintext file is left');
  t.false((await Wal.keyIdsOnDisk(walDir)).includes(0));
  t.deepEqual(await readdir(join(dir, 'snap')), [snapshotFileName(20, 1)]);
  const again = await DiskRaftStorage.open(dir);
  t.deepEqual(again.recovery, []);
  t.is(again.lastIndex(), 31);
  await again.close();

  // From now on a plaintext file is a downgrade, not an older version.
  await snap.save({ metadata: { index: 20, term: 1, confState: bootstrap }, data: enc('forged') });
  await t.throwsAsync(() => DiskRaftStorage.open(dir), { instanceOf: SnapshotCorruptionError, message: /plaintext snapshot .* replaced or downgraded/ });
});

test("encrypted storage: encrypting an older version's directory survives a crash midway (after the new segment, before the old ones are gone)", async (t) => {
  const dir = await tempDir(t);
  await olderVersionDirectory(dir);
  // The crash: the first unlink of a WAL segment fails, so the open stops right there.
  let crashed = false;
  const crashingFs: DurableFs = {
    ...nodeDurableFs,
    async unlink(path) {
      if (!crashed && path.endsWith('.wal')) {
        crashed = true;
        throw new Error('crash (injected)');
      }
      await nodeDurableFs.unlink(path);
    },
  };
  await t.throwsAsync(() => DiskRaftStorage.open(dir, { fs: crashingFs }), { message: /crash \(injected\)/ });
  const keyIds = await Wal.keyIdsOnDisk(join(dir, 'wal'));
  t.true(keyIds.includes(0) && keyIds.includes(1), `plaintext segments and the new encrypted one lie side by side: ${keyIds.join(' ')}`);

  const s = await DiskRaftStorage.open(dir);
  t.is(s.firstIndex(), 21);
  t.is(s.lastIndex(), 30);
  t.is(new TextDecoder().decode(s.entries(30, 31, 100)[0]?.data), `${MARK}-30`);
  t.is(s.initialState().hardState.commit, 30);
  t.regex(s.recovery.join(' '), /rewrote the plaintext WAL/);
  await s.close();
  t.deepEqual(await filesHolding(dir, MARK), []);
  t.deepEqual(await Wal.keyIdsOnDisk(join(dir, 'wal')), [1]);
});

test('encrypted storage: a rotated data key takes over at the next snapshot; the old one goes once no file needs it', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskRaftStorage.open(dir, { bootstrap, keepSnapshots: 1 });
  for (let i = 1; i <= 10; i++) await s.save({ entries: [entry(i, 1)], hardState: { term: 1, vote: 'm1', commit: i } });
  t.is(await s.rotateDataKey(), 2);
  t.is(await s.rotateDataKey(), 2, 'a second request before the snapshot is the same rotation');
  t.deepEqual(s.dataKeyIds(), { current: 1, next: 2, held: [1, 2] });
  await s.save({ entries: [entry(11, 1)] });
  t.deepEqual(await Wal.keyIdsOnDisk(join(dir, 'wal')), [1], 'until the snapshot, records are sealed with the old key');

  await s.compact(8, bootstrap, enc('state8'));
  t.deepEqual(s.dataKeyIds(), { current: 2, next: undefined, held: [1, 2] }, 'segment 0 (key 1) still holds entries 9..11');
  await s.save({ entries: [entry(12, 1)] });
  t.deepEqual(s.walSegments().length, 2);
  const snaps = await readdir(join(dir, 'snap'));
  t.deepEqual(snaps, [snapshotFileName(8, 1)]);

  await s.compact(12, bootstrap, enc('state12'));
  t.deepEqual(s.dataKeyIds(), { current: 2, next: undefined, held: [2] }, 'no segment or snapshot file needs key 1 any more');
  await s.close();
  const r = await DiskRaftStorage.open(dir);
  t.is(new TextDecoder().decode(r.snapshot().data), 'state12');
  t.is(r.lastIndex(), 12);
  await r.close();
});

test('encrypted storage: keys rotate by themselves: after enough seals, and at every open of an existing keyring', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskRaftStorage.open(dir, { bootstrap, rotateAfterSeals: 20 });
  t.deepEqual(s.dataKeyIds(), { current: 1, next: undefined, held: [1] }, 'a new keyring starts with one key');
  for (let i = 1; i <= 5; i++) await s.save({ entries: [entry(i, 1)], hardState: { term: 1, vote: 'm1', commit: i } });
  await s.compact(3, bootstrap, enc('state3'));
  t.is(s.dataKeyIds().current, 1, 'fewer seals than the limit: no rotation');
  for (let i = 6; i <= 15; i++) await s.save({ entries: [entry(i, 1)], hardState: { term: 1, vote: 'm1', commit: i } });
  await s.compact(12, bootstrap, enc('state12'));
  t.is(s.dataKeyIds().current, 2, 'past the limit, the snapshot brought a new key');
  await s.close();

  const r = await DiskRaftStorage.open(dir);
  t.deepEqual(r.dataKeyIds().next, 3, 'an open of an existing keyring asks for a new key');
  await r.save({ entries: [entry(16, 1)] });
  await r.compact(16, bootstrap, enc('state16'));
  t.is(r.dataKeyIds().current, 3);
  await r.close();
  const again = await DiskRaftStorage.open(dir);
  t.is(new TextDecoder().decode(again.snapshot().data), 'state16');
  await again.close();
});

test('encrypted storage: close waits for a snapshot file being written beside Raft, and none is begun after it', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskRaftStorage.open(dir, { bootstrap });
  await s.save({ entries: entries(1, 6, 1) });
  await s.close();
  // A reopened keyring has a rotation waiting: the snapshot's key takeover writes the keyring too.
  const r = await DiskRaftStorage.open(dir);
  const prepared = r.prepareSnapshot(5, bootstrap, randomBytes(4 * 1024 * 1024));
  await new Promise((resolve) => setImmediate(resolve)); // under way: past its wait for earlier saves
  await r.close();
  const after = { snaps: await readdir(join(dir, 'snap')), keyring: await readFile(join(dir, 'keys', 'deks'), 'utf8') };
  t.truthy(await prepared, 'the snapshot begun before close was written');
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.deepEqual(await readdir(join(dir, 'snap')), after.snaps, 'nothing lands in snap/ after close returned');
  t.is(await readFile(join(dir, 'keys', 'deks'), 'utf8'), after.keyring, 'nor in the keyring');
  t.is(await r.prepareSnapshot(6, bootstrap, new Uint8Array()), undefined, 'a snapshot asked for after close is not made');
});

test('encrypted storage: a large snapshot is sealed and written in slices, so the event loop turns meanwhile', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskRaftStorage.open(dir, { bootstrap });
  await s.save({ entries: entries(1, 3, 1) });
  const state = randomBytes(16 * 1024 * 1024);
  let turns = 0;
  const ticker = setInterval(() => turns++, 1);
  const at = s.prepareSnapshot(2, bootstrap, state);
  const prepared = await at;
  clearInterval(ticker);
  t.truthy(prepared);
  t.true(turns > 0, 'timers ran while the snapshot was sealed');
  if (prepared) await s.commitSnapshot(prepared);
  await s.close();
  const file = await readFile(join(dir, 'snap', snapshotFileName(2, 1)));
  t.false(file.includes(state.subarray(1000, 1064)), 'the state is not in the file in clear');
  const r = await DiskRaftStorage.open(dir);
  t.true(Buffer.from(r.snapshot().data).equals(state));
  await r.close();
});

test('encrypted storage: a tampered snapshot file (CRC redone) is refused naming its index', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskRaftStorage.open(dir, { bootstrap });
  await s.save({ entries: entries(1, 5, 1) });
  await s.compact(4, bootstrap, enc(`${MARK}-state`));
  await s.close();
  const file = join(dir, 'snap', snapshotFileName(4, 1));
  const buf = await readFile(file);
  buf[buf.length - 20] = (buf[buf.length - 20] as number) ^ 0x01;
  buf.writeUInt32LE(crc32(buf.subarray(12)), 8);
  await writeFile(file, buf);
  const err = await t.throwsAsync(() => DiskRaftStorage.open(dir), { instanceOf: SnapshotCorruptionError });
  t.true(err.message.includes(file));
  t.regex(err.message, /snapshot 4 \(term 1\) does not open with data key 1/);
});
