// Encryption at rest on a real Raft store: one member with its gRPC server on loopback, real WAL
// and snapshot files with fsync (control-plane/raft/host/serve-member.ts, as the member process
// runs it). A Secret written through the store, snapshots forced, the member restarted twice: then
// no file under its data directory holds the secret, in clear or in base64 at any alignment. And a
// byte of a WAL entry's ciphertext changed on disk makes the reopen fail naming the entry's index.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import test, { type ExecutionContext } from 'ava';

import { LOCAL_INSECURE } from '../../common/transport/credentials.js';
import { serveRaftMember, type ServedMember } from '../../control-plane/raft/host/serve-member.js';
import { decodeRecordLabel } from '../../control-plane/raft/storage/sealing.js';
import { FRAME_HEADER_BYTES, FrameType, decodeSegmentHeader, readFrame } from '../../control-plane/raft/storage/wal-codec.js';
import { WalCorruptionError } from '../../control-plane/raft/storage/wal-replay.js';
import { eventually } from '../helpers/eventually.js';
import { filesUnder } from '../helpers/files-under.js';

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-raft-enc-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Members not stopped by their test are stopped by its teardown. */
const running = new Set<ServedMember>();

async function startMember(t: ExecutionContext, dataDir: string, snapshotEvery: number): Promise<ServedMember> {
  const member = await serveRaftMember('127.0.0.1:0', {
    id: 'm0',
    group: 'enc',
    dataDir,
    bootstrap: [{ id: 'm0', address: '' }],
    security: LOCAL_INSECURE,
    tickMs: 20,
    electionTick: 10,
    snapshotEvery,
  });
  running.add(member);
  t.teardown(() => (running.has(member) ? stopMember(member) : undefined));
  return member;
}

async function stopMember(member: ServedMember): Promise<void> {
  running.delete(member);
  await member.stop();
}

/** A Secret as the API server stores it: the envelope with the data base64-encoded. */
function secretObject(name: string, plaintext: string): { key: string; value: string } {
  const secret = { apiVersion: 'tessera/v1', kind: 'Secret', metadata: { name, stack: 'app' }, spec: { data: Buffer.from(plaintext).toString('base64') } };
  return { key: `/tessera/objects/Secret/app/${name}`, value: JSON.stringify(secret) };
}

/**
 * What must appear nowhere: the marker and the secret in clear, and the marker in base64 at each of
 * the three alignments it can have inside a longer base64 text (the characters that depend on the
 * marker's bytes alone: the first and last four, which may mix in neighbouring bytes, are dropped).
 */
function needles(marker: string, plaintext: string, value: string): Buffer[] {
  const out = [marker, plaintext, value, Buffer.from(plaintext).toString('base64')].map((s) => Buffer.from(s));
  for (let shift = 0; shift < 3; shift++) {
    const b64 = Buffer.concat([Buffer.alloc(shift, 0x3d), Buffer.from(marker)]).toString('base64');
    out.push(Buffer.from(b64.slice(4, -4)));
  }
  return out;
}

async function snapshotIndexes(dataDir: string): Promise<number[]> {
  return (await readdir(join(dataDir, 'snap'))).filter((n) => n.endsWith('.snap')).map((n) => parseInt(n.slice(0, 16), 16));
}

test('raft store encryption: a secret written, snapshotted and restarted twice is in no file under the data dir, in clear or base64', async (t) => {
  const root = await tempDir(t);
  const dataDir = join(root, 'm0');
  const marker = `tessera-marker-${randomBytes(16).toString('hex')}`;
  const plaintext = `password=${marker}`;
  const first = secretObject('db', plaintext);
  const second = secretObject('db-again', plaintext);

  let member = await startMember(t, dataDir, 5);
  await member.store.put(first.key, first.value);
  for (let i = 0; i < 12; i++) await member.store.put(`/tessera/objects/Config/app/filler-${i}`, JSON.stringify({ i }));
  await eventually('a snapshot past the secret', async () => Math.max(...(await snapshotIndexes(dataDir))) > 5, 20_000, 50);
  await stopMember(member);

  member = await startMember(t, dataDir, 5);
  t.is((await member.store.get(first.key))?.value, first.value, 'the secret reads back after a restart');
  const before = Math.max(...(await snapshotIndexes(dataDir)));
  // Written after the restart too, so it lies in a fresh segment and in a later snapshot.
  await member.store.put(second.key, second.value);
  for (let i = 12; i < 24; i++) await member.store.put(`/tessera/objects/Config/app/filler-${i}`, JSON.stringify({ i }));
  await eventually('a snapshot after the restart', async () => Math.max(...(await snapshotIndexes(dataDir))) > before, 20_000, 50);
  await stopMember(member);

  // No snapshot from here on (a background snapshot still being written after stop would race with
  // the scan and the clean-up): one more write stays in the WAL only.
  member = await startMember(t, dataDir, 10_000);
  t.is((await member.store.get(second.key))?.value, second.value);
  await member.store.put(secretObject('db-wal', plaintext).key, secretObject('db-wal', plaintext).value);
  await stopMember(member);

  const files = await filesUnder(dataDir);
  const kinds = new Set(files.map((f) => f.slice(dataDir.length + 1).split('/')[0]));
  t.deepEqual(
    [...kinds].sort((a, b) => String(a).localeCompare(String(b))),
    ['keys', 'snap', 'wal'],
    files.join('\n'),
  );
  let scanned = 0;
  const found: string[] = [];
  const looked = needles(marker, plaintext, first.value);
  // The search itself finds the secret where it is in clear: the base64 needles (the last three)
  // inside the object as the API stores it, at the marker's alignment there.
  t.true(
    looked.slice(-3).some((n) => Buffer.from(first.value).includes(n)),
    'a base64 needle matches the stored object',
  );
  for (const f of files) {
    const bytes = await readFile(f);
    scanned += bytes.length;
    for (const n of looked) if (bytes.includes(n)) found.push(`${f} holds ${JSON.stringify(n.toString())}`);
  }
  t.deepEqual(found, []);
  t.true(scanned > 10_000, `${scanned} bytes scanned in ${files.length} files`);
});

test('raft store encryption: a byte of a WAL entry changed on disk makes the reopen fail naming its index', async (t) => {
  const root = await tempDir(t);
  const dataDir = join(root, 'm0');
  const member = await startMember(t, dataDir, 10_000);
  const secret = secretObject('db', `password=${randomBytes(8).toString('hex')}`);
  await member.store.put(secret.key, secret.value);
  for (let i = 0; i < 5; i++) await member.store.put(`/x/${i}`, String(i));
  await stopMember(member);

  const walDir = join(dataDir, 'wal');
  const segments = (await readdir(walDir)).filter((n) => n.endsWith('.wal')).sort();
  const path = join(walDir, segments[segments.length - 1] as string);
  const original = await readFile(path);
  const headerFrame = readFrame(original, 0, 0);
  if (!headerFrame.ok) throw new Error(headerFrame.reason);
  const { salt, keyId } = decodeSegmentHeader(headerFrame.frame.payload);
  t.true(keyId > 0, 'the segment is encrypted');
  // The first entries frame that is not in the last batch (so a change without its CRC is no torn write).
  const frames: Array<{ offset: number; end: number; type: FrameType; index: number }> = [];
  for (let offset = headerFrame.frame.end; ;) {
    const r = readFrame(original, offset, salt);
    if (!r.ok) break;
    frames.push({ offset, end: r.frame.end, type: r.frame.type, index: decodeRecordLabel(r.frame.payload)?.index ?? -1 });
    offset = r.frame.end;
  }
  const target = frames.find((f) => f.type === FrameType.Entries && f.index > 1);
  if (!target) throw new Error(`no entries frame in ${path}`);
  t.true(frames.indexOf(target) < frames.length - 1);

  // Tampering: one ciphertext byte flipped and the CRC made to match again.
  const tampered = Buffer.from(original);
  tampered[target.end - 20] = (tampered[target.end - 20] as number) ^ 0x01;
  const crc = crc32(tampered.subarray(target.offset + FRAME_HEADER_BYTES, target.end), crc32(tampered.subarray(target.offset + 4, target.offset + 9), salt));
  tampered.writeUInt32LE(crc, target.offset + 9);
  await writeFile(path, tampered);
  const err = await t.throwsAsync(() => startMember(t, dataDir, 10_000), { instanceOf: WalCorruptionError });
  t.regex(err.message, new RegExp(`byte ${target.offset}: record of entr(y|ies) ${target.index}\\b.* does not open with data key ${keyId}`));

  // Damage: the same byte flipped, the CRC left as it was.
  const damaged = Buffer.from(original);
  damaged[target.end - 20] = (damaged[target.end - 20] as number) ^ 0x01;
  await writeFile(path, damaged);
  const crcErr = await t.throwsAsync(() => startMember(t, dataDir, 10_000), { instanceOf: WalCorruptionError });
  t.regex(crcErr.message, new RegExp(`CRC mismatch \\(its clear label, unverified, names the record of entr(y|ies) ${target.index}\\b`));

  await writeFile(path, original);
  const restored = await startMember(t, dataDir, 10_000);
  t.is((await restored.store.get(secret.key))?.value, secret.value, 'the untouched log opens');
  await stopMember(restored);
});
