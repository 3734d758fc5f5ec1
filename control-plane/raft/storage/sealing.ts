// Encryption at rest for Raft storage: AES-256-GCM sealing of WAL records and snapshot files with a
// data-encryption key (DEK), and wrapping of DEKs by the key-encryption key (KEK).
//
// Pure: every function here is a function of its arguments. The nonce is one of them; callers draw
// a fresh 96-bit nonce from the CSPRNG for every seal (keyring.ts), so no nonce repeats under one
// key in practice (random nonces stay safe for about 2^32 seals per key; disk-storage.ts rotates a
// key long before that).
//
// Associated data says where a sealed thing belongs (which record of which segment, which
// snapshot, which key id), so bytes sealed for one place fail to open anywhere else. Each use has
// its own domain prefix, so a WAL record can never pass for a snapshot or a wrapped key.
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { readU64, writeU64 } from './u64.js';

export const KEY_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
/** Bytes a seal adds to its plaintext: the nonce before it, the tag after it. */
export const SEAL_OVERHEAD = NONCE_BYTES + TAG_BYTES;
/** Key ids are u32; 0 means "not sealed" in the on-disk headers. */
export const MAX_KEY_ID = 0xffff_ffff;

const CIPHER = 'aes-256-gcm';

/** A data-encryption key and the id the files it sealed carry. */
export interface DataKey {
  readonly id: number;
  readonly key: Uint8Array;
}

/** The keys the readers need: by id, and whether plaintext (older-version) files are accepted. */
export interface OpeningKeys {
  key(id: number): DataKey | undefined;
  /** True only while an older version's plaintext files are being sealed (migration). */
  readonly acceptPlaintext: boolean;
}

/** What a writer needs besides: the key to seal with now, and fresh nonces. */
export interface SealingKeys extends OpeningKeys {
  current(): DataKey;
  nonce(): Uint8Array;
}

/** Opening failed: wrong key, or the bytes or their associated data were changed. Never partial data. */
export class SealOpenError extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = 'SealOpenError';
  }
}

/**
 * The key as a KeyObject, made once per key bytes (a seal with raw bytes costs OpenSSL a key import
 * each time: about 2.7 µs more per seal here). A cache of a pure function: same bytes, same key.
 */
const keyObjects = new WeakMap<Uint8Array, KeyObject>();
function secretKey(key: Uint8Array): KeyObject {
  let k = keyObjects.get(key);
  if (!k) {
    if (key.length !== KEY_BYTES) throw new RangeError(`sealing: a key is ${KEY_BYTES} bytes, got ${key.length}`);
    k = createSecretKey(key);
    keyObjects.set(key, k);
  }
  return k;
}

/** The ciphertext pieces (one per plaintext piece) and the tag: for callers that lay the bytes out themselves. */
export function sealParts(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array | readonly Uint8Array[],
  ad: Uint8Array,
): { ciphertext: Buffer[]; tag: Buffer } {
  const k = secretKey(key);
  if (nonce.length !== NONCE_BYTES) throw new RangeError(`sealing: a nonce is ${NONCE_BYTES} bytes, got ${nonce.length}`);
  const cipher = createCipheriv(CIPHER, k, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(ad);
  const ciphertext: Buffer[] = [];
  for (const p of plaintext instanceof Uint8Array ? [plaintext] : plaintext) ciphertext.push(cipher.update(p));
  const rest = cipher.final();
  if (rest.length > 0) ciphertext.push(rest);
  return { ciphertext, tag: cipher.getAuthTag() };
}

/** A seal made piece by piece, for data too large to seal in one go on the event loop. */
export interface StreamSeal {
  /** The ciphertext of the next piece of plaintext. */
  update(piece: Uint8Array): Buffer;
  /** The last ciphertext bytes (if any) and the tag. */
  finish(): { rest: Buffer; tag: Buffer };
}

/** Like seal(), fed in pieces: nonce first (the caller writes it), then each update(), then finish(). */
export function startSeal(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array): StreamSeal {
  const k = secretKey(key);
  if (nonce.length !== NONCE_BYTES) throw new RangeError(`sealing: a nonce is ${NONCE_BYTES} bytes, got ${nonce.length}`);
  const cipher = createCipheriv(CIPHER, k, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(ad);
  return {
    update: (piece) => cipher.update(piece),
    finish: () => {
      const rest = cipher.final();
      return { rest, tag: cipher.getAuthTag() };
    },
  };
}

/** nonce | AES-256-GCM(key, nonce, plaintext, ad) | tag. */
export function seal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array | readonly Uint8Array[], ad: Uint8Array): Buffer {
  const { ciphertext, tag } = sealParts(key, nonce, plaintext, ad);
  return Buffer.concat([nonce, ...ciphertext, tag]);
}

/** The plaintext of `sealed`, only once its tag verified against `key` and `ad`; SealOpenError otherwise. */
export function open(key: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Buffer {
  const k = secretKey(key);
  if (sealed.length < SEAL_OVERHEAD) throw new SealOpenError(`sealed data is ${sealed.length} bytes, shorter than nonce and tag (${SEAL_OVERHEAD})`);
  const bytes = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length);
  const decipher = createDecipheriv(CIPHER, k, bytes.subarray(0, NONCE_BYTES), { authTagLength: TAG_BYTES });
  decipher.setAAD(ad);
  decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
  const body = decipher.update(bytes.subarray(NONCE_BYTES, bytes.length - TAG_BYTES));
  try {
    // GCM releases plaintext before it checks the tag; `body` is returned only if final() passes.
    const rest = decipher.final();
    return rest.length === 0 ? body : Buffer.concat([body, rest]);
  } catch {
    body.fill(0);
    throw new SealOpenError('authentication failed (tampered, moved from another place, or sealed with another key)');
  }
}

// ------------------------------------------------------------------ associated data

const WAL_RECORD_DOMAIN = Buffer.from('tessera raft wal record v1\0', 'latin1');
const SNAPSHOT_DOMAIN = Buffer.from('tessera raft snapshot v1\0', 'latin1');
const WRAPPED_KEY_DOMAIN = Buffer.from('tessera raft data key v1\0', 'latin1');
const KEYRING_DOMAIN = Buffer.from('tessera raft keyring v1\0', 'latin1');

/** Where a WAL record lies: its segment, its byte offset in it, and its frame header. */
export interface RecordPlace {
  keyId: number;
  segmentSeq: number;
  /** The index the segment's header says it starts at (so the header is bound too). */
  segmentFirstIndex: number;
  segmentSalt: number;
  offset: number;
  /** The frame's type byte as written (with the end-of-batch flag). */
  typeByte: number;
  batch: number;
}

/**
 * What a record says about the log, kept in the clear beside the ciphertext so an error can name
 * it: entries: first and last index and the last entry's term; a hard state: commit and term; a
 * snapshot marker: its index (twice) and term.
 */
export interface RecordLabel {
  index: number;
  lastIndex: number;
  term: number;
}

export const RECORD_LABEL_BYTES = 24;

/** Associated data laid out field by field into one buffer of a known size (no allocation per field). */
class AdWriter {
  private readonly out: Buffer;
  private at: number;
  constructor(domain: Buffer, fieldBytes: number) {
    this.out = Buffer.allocUnsafe(domain.length + fieldBytes);
    this.at = domain.copy(this.out, 0);
  }
  u8(v: number): this {
    this.at = this.out.writeUInt8(v & 0xff, this.at);
    return this;
  }
  u32(v: number): this {
    this.at = this.out.writeUInt32LE(v >>> 0, this.at);
    return this;
  }
  u64(v: number): this {
    writeU64(this.out, v, this.at);
    this.at += 8;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.out.set(b, this.at);
    this.at += b.length;
    return this;
  }
  done(): Buffer {
    if (this.at !== this.out.length) throw new Error(`sealing: associated data is ${this.at} bytes, ${this.out.length} were laid out`);
    return this.out;
  }
}

/** Writes the label at `at` of `out` (RECORD_LABEL_BYTES bytes). */
export function writeRecordLabel(out: Buffer, label: RecordLabel, at: number): void {
  writeU64(out, label.index, at);
  writeU64(out, label.lastIndex, at + 8);
  writeU64(out, label.term, at + 16);
}

export function encodeRecordLabel(label: RecordLabel): Buffer {
  const out = Buffer.allocUnsafe(RECORD_LABEL_BYTES);
  writeRecordLabel(out, label, 0);
  return out;
}

/** The label at the start of a sealed record payload, or undefined when the payload is too short. */
export function decodeRecordLabel(payload: Uint8Array): RecordLabel | undefined {
  if (payload.length < RECORD_LABEL_BYTES) return undefined;
  const b = Buffer.from(payload.buffer, payload.byteOffset, RECORD_LABEL_BYTES);
  return { index: readU64(b, 0), lastIndex: readU64(b, 8), term: readU64(b, 16) };
}

export function walRecordAd(place: RecordPlace, label: RecordLabel): Buffer {
  return new AdWriter(WAL_RECORD_DOMAIN, 4 + 8 + 8 + 4 + 8 + 1 + 4 + RECORD_LABEL_BYTES)
    .u32(place.keyId)
    .u64(place.segmentSeq)
    .u64(place.segmentFirstIndex)
    .u32(place.segmentSalt)
    .u64(place.offset)
    .u8(place.typeByte)
    .u32(place.batch)
    .u64(label.index)
    .u64(label.lastIndex)
    .u64(label.term)
    .done();
}

export function snapshotAd(keyId: number, index: number, term: number): Buffer {
  return new AdWriter(SNAPSHOT_DOMAIN, 4 + 8 + 8).u32(keyId).u64(index).u64(term).done();
}

// ------------------------------------------------------------------ key wrapping

/** Bytes of a wrapped key: nonce, the sealed 32-byte key, tag. */
export const WRAPPED_KEY_BYTES = KEY_BYTES + SEAL_OVERHEAD;

/** The DEK sealed by the KEK; its id is bound in, so a wrapped key cannot be relabelled. */
export function wrapKey(kek: Uint8Array, nonce: Uint8Array, dek: DataKey): Buffer {
  if (dek.key.length !== KEY_BYTES) throw new RangeError(`sealing: a key is ${KEY_BYTES} bytes, got ${dek.key.length}`);
  return seal(kek, nonce, dek.key, new AdWriter(WRAPPED_KEY_DOMAIN, 4).u32(dek.id).done());
}

export function unwrapKey(kek: Uint8Array, wrapped: Uint8Array, id: number): DataKey {
  if (wrapped.length !== WRAPPED_KEY_BYTES) throw new SealOpenError(`wrapped data key ${id} is ${wrapped.length} bytes, expected ${WRAPPED_KEY_BYTES}`);
  try {
    return { id, key: open(kek, wrapped, new AdWriter(WRAPPED_KEY_DOMAIN, 4).u32(id).done()) };
  } catch (err) {
    if (err instanceof SealOpenError)
      throw new SealOpenError(`data key ${id} does not unwrap with this key-encryption key (wrong KEK, or the keyring was altered)`);
    throw err;
  }
}

/** What a keyring file says besides its keys' bytes: sealed (as associated data) by the KEK so an edit shows. */
export interface KeyringState {
  current: number;
  /** 0: none. */
  next: number;
  acceptPlaintext: boolean;
  keys: ReadonlyArray<{ id: number; wrapped: Uint8Array }>;
}

function keyringAd(state: KeyringState): Buffer {
  const keyBytes = state.keys.reduce((n, k) => n + 4 + k.wrapped.length, 0);
  const w = new AdWriter(KEYRING_DOMAIN, 4 + 4 + 1 + 4 + keyBytes)
    .u32(state.current)
    .u32(state.next)
    .u8(state.acceptPlaintext ? 1 : 0)
    .u32(state.keys.length);
  for (const k of state.keys) w.u32(k.id).bytes(k.wrapped);
  return w.done();
}

/** A seal of nothing over the keyring's state: only the KEK's holder can make one that opens. */
export function sealKeyringState(kek: Uint8Array, nonce: Uint8Array, state: KeyringState): Buffer {
  return seal(kek, nonce, new Uint8Array(), keyringAd(state));
}

export function verifyKeyringState(kek: Uint8Array, sealed: Uint8Array, state: KeyringState): void {
  try {
    open(kek, sealed, keyringAd(state));
  } catch (err) {
    if (err instanceof SealOpenError) throw new SealOpenError('the keyring does not verify with this key-encryption key (wrong KEK, or the file was edited)');
    throw err;
  }
}
