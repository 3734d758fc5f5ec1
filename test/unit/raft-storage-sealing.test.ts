// Encryption at rest, the pure parts: AES-256-GCM sealing (round trip, wrong key, every tampered
// byte, associated data binding a record to its index, term and place, nonces), key wrapping, the
// sealed WAL record codec, encrypted snapshot files, and the keyring and KEK file formats.
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import test from 'ava';
import type { Entry, Snapshot } from '../../control-plane/raft/core/types.js';
import {
  decodeKekFile,
  encodeKekFile,
  formatKeyringFile,
  KeyringError,
  keyringState,
  NonceSource,
  parseKeyringFile,
} from '../../control-plane/raft/storage/keyring.js';
import { encodeSealedRecord, openSealedRecord, type FramePosition } from '../../control-plane/raft/storage/sealed-record.js';
import {
  KEY_BYTES,
  NONCE_BYTES,
  SEAL_OVERHEAD,
  SealOpenError,
  open,
  seal,
  sealKeyringState,
  snapshotAd,
  unwrapKey,
  verifyKeyringState,
  walRecordAd,
  wrapKey,
  type DataKey,
  type OpeningKeys,
  type RecordLabel,
  type RecordPlace,
} from '../../control-plane/raft/storage/sealing.js';
import { SnapshotCorruptionError, decodeSnapshot, encodeSnapshot, snapshotFileSlices } from '../../control-plane/raft/storage/snapshotter.js';
import { FrameType, readFrame, type WalRecord } from '../../control-plane/raft/storage/wal-codec.js';

const key = (id = 1): DataKey => ({ id, key: randomBytes(KEY_BYTES) });
const nonce = (): Buffer => randomBytes(NONCE_BYTES);
const text = (s: string): Buffer => Buffer.from(s, 'utf8');

const place: RecordPlace = { keyId: 1, segmentSeq: 4, segmentFirstIndex: 3, segmentSalt: 0xdeadbeef, offset: 41, typeByte: FrameType.Entries | 0x80, batch: 3 };
const label: RecordLabel = { index: 5, lastIndex: 7, term: 2 };

test('sealing: a sealed message opens with its key and associated data, and only then', (t) => {
  const k = key();
  const ad = walRecordAd(place, label);
  const sealed = seal(k.key, nonce(), [text('secret '), text('parts')], ad);
  t.is(sealed.length, 'secret parts'.length + SEAL_OVERHEAD);
  t.false(sealed.includes(text('secret')), 'the plaintext does not appear in the sealed bytes');
  t.is(open(k.key, sealed, ad).toString('utf8'), 'secret parts');
  t.is(open(k.key, seal(k.key, nonce(), new Uint8Array(), ad), ad).length, 0, 'an empty plaintext round-trips too');
});

test('sealing: the wrong key is refused, never decoded', (t) => {
  const ad = snapshotAd(1, 10, 2);
  const sealed = seal(key().key, nonce(), text('data'), ad);
  const err = t.throws(() => open(key().key, sealed, ad), { instanceOf: SealOpenError });
  t.regex(err.message, /authentication failed/);
});

test('sealing: flipping any one byte (nonce, ciphertext or tag) is refused', (t) => {
  const k = key();
  const ad = walRecordAd(place, label);
  const sealed = seal(k.key, nonce(), text('a record of some length'), ad);
  for (let i = 0; i < sealed.length; i++) {
    const bad = Buffer.from(sealed);
    bad[i] = (bad[i] as number) ^ 0x01;
    t.throws(() => open(k.key, bad, ad), { instanceOf: SealOpenError }, `byte ${i}`);
  }
  t.throws(() => open(k.key, sealed.subarray(0, sealed.length - 1), ad), { instanceOf: SealOpenError }, 'a cut tag');
  t.throws(() => open(k.key, sealed.subarray(0, SEAL_OVERHEAD - 1), ad), { instanceOf: SealOpenError }, 'shorter than nonce and tag');
});

test('sealing: the associated data binds index and term (swapped too) and every part of the place', (t) => {
  const k = key();
  const sealed = seal(k.key, nonce(), text('x'), walRecordAd(place, label));
  const labels: RecordLabel[] = [
    { index: 2, lastIndex: 7, term: 5 }, // index and term swapped
    { index: 6, lastIndex: 7, term: 2 },
    { index: 5, lastIndex: 8, term: 2 },
    { index: 5, lastIndex: 7, term: 3 },
  ];
  for (const l of labels) t.throws(() => open(k.key, sealed, walRecordAd(place, l)), { instanceOf: SealOpenError }, JSON.stringify(l));
  const places: RecordPlace[] = [
    { ...place, keyId: 2 },
    { ...place, segmentSeq: 5 },
    { ...place, segmentFirstIndex: 4 },
    { ...place, segmentSalt: 1 },
    { ...place, offset: 42 },
    { ...place, typeByte: FrameType.Entries },
    { ...place, batch: 4 },
  ];
  for (const p of places) t.throws(() => open(k.key, sealed, walRecordAd(p, label)), { instanceOf: SealOpenError }, JSON.stringify(p));
  // A WAL record's associated data is never a snapshot's, nor the other way round.
  const snap = seal(k.key, nonce(), text('x'), snapshotAd(1, 5, 2));
  t.throws(() => open(k.key, snap, walRecordAd(place, label)), { instanceOf: SealOpenError });
  t.throws(() => open(k.key, snap, snapshotAd(1, 2, 5)), { instanceOf: SealOpenError }, 'a snapshot with index and term swapped');
});

test('sealing: a nonce is 96 bits and used once: the same plaintext seals differently each time', (t) => {
  const k = key();
  const ad = snapshotAd(1, 1, 1);
  t.throws(() => seal(k.key, randomBytes(8), text('x'), ad), { instanceOf: RangeError });
  t.throws(() => seal(randomBytes(16), nonce(), text('x'), ad), { instanceOf: RangeError });
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) seen.add(seal(k.key, nonce(), text('same'), ad).toString('hex'));
  t.is(seen.size, 1000);
});

test('sealing: the nonce source hands out 96-bit nonces that never repeat, across refills of its pool', (t) => {
  const source = new NonceSource();
  const seen = new Set<string>();
  const n = 100_000;
  for (let i = 0; i < n; i++) {
    const nonce = source.next();
    t.is(nonce.length, NONCE_BYTES);
    seen.add(Buffer.from(nonce).toString('hex'));
  }
  t.is(seen.size, n);
  // A nonce handed out is a copy: a refill of the pool does not change it.
  const kept = Buffer.from(source.next());
  const held = source.next();
  const copy = Buffer.from(held);
  for (let i = 0; i < 1000; i++) source.next();
  t.deepEqual(Buffer.from(held), copy);
  t.notDeepEqual(kept, copy);
});

test('sealing: every record of a sealed segment carries its own nonce', (t) => {
  const k = key();
  const source = new NonceSource();
  const nonces = new Set<string>();
  const records = 5000;
  let offset = 41;
  for (let i = 1; i <= records; i++) {
    const record: WalRecord = { type: FrameType.Entries, entries: [{ index: i, term: 1, type: 'normal', data: text('same data') }] };
    const frame = encodeSealedRecord(record, { segment: { seq: 0, firstIndex: 1, salt: 7 }, offset, batch: i, final: true }, k, source.next());
    // Frame header 13 bytes, clear label 24, then the nonce.
    nonces.add(frame.subarray(13 + 24, 13 + 24 + NONCE_BYTES).toString('hex'));
    offset += frame.length;
  }
  t.is(nonces.size, records);
});

test('key wrapping: a data key unwraps with its KEK and id only', (t) => {
  const kek = randomBytes(KEY_BYTES);
  const dek = key(7);
  const wrapped = wrapKey(kek, nonce(), dek);
  t.false(wrapped.includes(Buffer.from(dek.key)), 'the key does not appear in its wrapping');
  t.deepEqual(Buffer.from(unwrapKey(kek, wrapped, 7).key), Buffer.from(dek.key));
  t.throws(() => unwrapKey(randomBytes(KEY_BYTES), wrapped, 7), { instanceOf: SealOpenError, message: /data key 7 does not unwrap/ });
  t.throws(() => unwrapKey(kek, wrapped, 8), { instanceOf: SealOpenError }, 'a wrapped key relabelled as another id');
  t.throws(() => unwrapKey(kek, wrapped.subarray(1), 7), { instanceOf: SealOpenError });
});

// ------------------------------------------------------------------ sealed WAL records

function entries(lo: number, hi: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = lo; i <= hi; i++) out.push({ index: i, term, type: 'normal', data: new Uint8Array(text(`value ${i}`)) });
  return out;
}

function frameOf(buf: Buffer): ReturnType<typeof readFrame> & { ok: true } {
  const r = readFrame(buf, 0, 7);
  if (!r.ok) throw new Error(r.reason);
  return r;
}

test('sealed records: a record opens at its place only, and a refusal names its index', (t) => {
  const k = key(3);
  const at: FramePosition = { segment: { seq: 2, firstIndex: 1, salt: 7 }, offset: 100, batch: 5, final: true };
  const record: WalRecord = { type: FrameType.Entries, entries: entries(4, 6, 2) };
  const bytes = encodeSealedRecord(record, at, k, nonce());
  t.false(bytes.includes(text('value 5')));
  const { frame } = frameOf(bytes);
  t.deepEqual(openSealedRecord(frame, 100, at.segment, k), record);
  const moved = t.throws(() => openSealedRecord(frame, 200, at.segment, k));
  t.regex(moved.message, /record of entries 4\.\.6 \(last term 2\) does not open with data key 3/);
  t.regex(moved.message, /not decoded/);
  t.throws(() => openSealedRecord(frame, 100, { seq: 3, firstIndex: 1, salt: 7 }, k), { message: /entries 4\.\.6/ }, 'another segment');
  t.throws(() => openSealedRecord(frame, 100, at.segment, key(3)), { message: /entries 4\.\.6/ }, 'another key with the same id');

  const hard: WalRecord = { type: FrameType.HardState, hardState: { term: 9, vote: 'm1', commit: 12 } };
  const hardFrame = frameOf(encodeSealedRecord(hard, at, k, nonce())).frame;
  t.deepEqual(openSealedRecord(hardFrame, 100, at.segment, k), hard);
  t.throws(() => openSealedRecord(hardFrame, 101, at.segment, k), { message: /hard state record \(term 9, commit 12\)/ });
  const marker: WalRecord = { type: FrameType.Snapshot, snapshot: { index: 30, term: 4 } };
  const markerFrame = frameOf(encodeSealedRecord(marker, at, k, nonce())).frame;
  t.throws(() => openSealedRecord(markerFrame, 101, at.segment, k), { message: /snapshot marker record \(index 30, term 4\)/ });
});

test('sealed records: a relabelled record (clear label edited, CRC redone) does not open', (t) => {
  const k = key();
  const at: FramePosition = { segment: { seq: 0, firstIndex: 1, salt: 7 }, offset: 41, batch: 1, final: true };
  const bytes = encodeSealedRecord({ type: FrameType.Entries, entries: entries(4, 6, 2) }, at, k, nonce());
  // The label's first u64 (index 4) is at frame offset 13; claim index 5 instead.
  bytes.writeUInt32LE(5, 13);
  bytes.writeUInt32LE(crc32(bytes.subarray(13), crc32(bytes.subarray(4, 9), 7)), 9);
  const { frame } = frameOf(bytes);
  t.throws(() => openSealedRecord(frame, 41, at.segment, k), { message: /entries 5\.\.6.*does not open/ });
});

// ------------------------------------------------------------------ snapshots

const snapshot: Snapshot = {
  metadata: { index: 40, term: 3, confState: { voters: ['m0'], learners: [] } },
  data: new Uint8Array(text('{"secret":"hunter2"}')),
};
const keysOf = (...ks: DataKey[]): OpeningKeys => ({ key: (id) => ks.find((k) => k.id === id), acceptPlaintext: false });

test('snapshot files: encrypted, they open with their key and hold nothing in clear', (t) => {
  const k = key(2);
  const file = encodeSnapshot(snapshot, { key: k, nonce: nonce() });
  t.false(file.includes(text('hunter2')));
  t.false(file.includes(text('voters')), 'the metadata is sealed too');
  t.deepEqual(decodeSnapshot('f', file, keysOf(k)), snapshot);
  t.throws(() => decodeSnapshot('f', file, keysOf(key(2))), {
    instanceOf: SnapshotCorruptionError,
    message: /snapshot 40 \(term 3\) does not open with data key 2/,
  });
  t.throws(() => decodeSnapshot('f', file, keysOf(key(1))), { instanceOf: SnapshotCorruptionError, message: /data key 2, which the keyring does not hold/ });
  t.throws(() => decodeSnapshot('f', file), { instanceOf: SnapshotCorruptionError, message: /no keys were given/ });
});

test('snapshot files: written in slices (a yield per MiB of work), the same bytes as in one go', (t) => {
  const big: Snapshot = { ...snapshot, data: new Uint8Array(randomBytes(3 * 1024 * 1024 + 5)) };
  for (const sealWith of [undefined, { key: key(4), nonce: nonce() }]) {
    const steps = snapshotFileSlices(big, sealWith);
    let yields = 0;
    let step = steps.next();
    while (!step.done) {
      yields++;
      step = steps.next();
    }
    t.is(yields, 4);
    const file = Buffer.concat(step.value);
    t.deepEqual(file, encodeSnapshot(big, sealWith));
    t.deepEqual(decodeSnapshot('f', file, sealWith ? keysOf(sealWith.key) : undefined), big);
  }
});

test('snapshot files: a tampered byte, or a header claiming another index, is refused (CRC redone)', (t) => {
  const k = key(2);
  const file = encodeSnapshot(snapshot, { key: k, nonce: nonce() });
  const recrc = (b: Buffer): Buffer => (b.writeUInt32LE(crc32(b.subarray(12)), 8), b);
  const flipped = Buffer.from(file);
  flipped[60] = (flipped[60] as number) ^ 0x40;
  t.throws(() => decodeSnapshot('f', flipped, keysOf(k)), { message: /CRC mismatch/ }, 'damage: the CRC catches it first');
  t.throws(() => decodeSnapshot('f', recrc(flipped), keysOf(k)), { message: /snapshot 40 \(term 3\) does not open/ }, 'tampering with the CRC redone');
  const relabelled = Buffer.from(file);
  relabelled.writeBigUInt64LE(41n, 16);
  t.throws(() => decodeSnapshot('f', recrc(relabelled), keysOf(k)), { message: /snapshot 41 \(term 3\) does not open/ });
});

test('snapshot files: plaintext (an older version) is read only while accepted', (t) => {
  const plain = encodeSnapshot(snapshot);
  t.true(plain.includes(text('hunter2')));
  t.deepEqual(decodeSnapshot('f', plain), snapshot);
  t.deepEqual(decodeSnapshot('f', plain, { ...keysOf(), acceptPlaintext: true }), snapshot);
  t.throws(() => decodeSnapshot('f', plain, keysOf()), { message: /plaintext snapshot .* replaced or downgraded/ });
});

// ------------------------------------------------------------------ key files

test('keyring file: round trip, and every malformed field refused by name', (t) => {
  const kek = randomBytes(KEY_BYTES);
  const wrapped = wrapKey(kek, nonce(), key(1));
  const state = {
    current: 1,
    next: 2,
    acceptPlaintext: false,
    keys: [
      { id: 1, wrapped },
      { id: 2, wrapped: wrapKey(kek, nonce(), key(2)) },
    ],
  };
  const file = { ...state, seal: sealKeyringState(kek, nonce(), keyringState(state)) };
  const textForm = formatKeyringFile(file);
  t.false(textForm.includes('key":'), 'no field holds a key in clear');
  const parsed = parseKeyringFile('p', textForm);
  t.deepEqual(parsed, file);
  t.notThrows(() => verifyKeyringState(kek, parsed.seal, keyringState(parsed)));
  // The seal covers what the JSON says: an edited flag, current key or key list does not verify.
  for (const edited of [
    { ...parsed, acceptPlaintext: true },
    { ...parsed, current: 2 },
    { ...parsed, next: undefined },
    { ...parsed, keys: parsed.keys.slice(0, 1) },
  ]) {
    t.throws(() => verifyKeyringState(kek, parsed.seal, keyringState(edited)), { instanceOf: SealOpenError, message: /the file was edited/ });
  }
  t.throws(() => verifyKeyringState(randomBytes(KEY_BYTES), parsed.seal, keyringState(parsed)), { instanceOf: SealOpenError }, 'another KEK');
  const good = JSON.parse(textForm) as Record<string, unknown>;
  const bad: Array<[string, unknown, RegExp]> = [
    ['not json', '{', /not JSON/],
    ['format', { ...good, format: 'x' }, /format is "x"/],
    ['version', { ...good, version: 2 }, /version 2 is not supported/],
    ['current', { ...good, current: 0 }, /current is not a key id/],
    ['current missing from keys', { ...good, current: 9 }, /current key 9 is not in keys/],
    ['next', { ...good, next: 'x' }, /next is neither null nor a key id/],
    ['empty keys', { ...good, keys: [] }, /keys is not a list/],
    [
      'duplicate',
      {
        ...good,
        next: null,
        keys: [
          { id: 1, wrapped: wrapped.toString('base64') },
          { id: 1, wrapped: wrapped.toString('base64') },
        ],
      },
      /key 1 appears twice/,
    ],
    ['short wrapped key', { ...good, keys: [{ id: 1, wrapped: 'AAAA' }] }, /keys\[0\]\.wrapped is 3 bytes/],
    ['acceptPlaintext', { ...good, acceptPlaintext: 'yes' }, /acceptPlaintext is not a boolean/],
    ['seal', { ...good, seal: 'AAAA' }, /seal is 3 bytes, expected 28/],
  ];
  for (const [what, value, message] of bad) {
    t.throws(() => parseKeyringFile('p', typeof value === 'string' ? value : JSON.stringify(value)), { instanceOf: KeyringError, message }, what);
  }
});

test('KEK file: round trip; wrong size or magic refused', (t) => {
  const kek = randomBytes(KEY_BYTES);
  t.deepEqual(decodeKekFile('k', encodeKekFile(kek)), kek);
  t.throws(() => decodeKekFile('k', kek), { instanceOf: KeyringError, message: /32 bytes, a key-encryption key file is 40/ });
  const wrongMagic = encodeKekFile(kek);
  wrongMagic.write('XXXX', 0, 'latin1');
  t.throws(() => decodeKekFile('k', wrongMagic), { message: /wrong magic/ });
});
