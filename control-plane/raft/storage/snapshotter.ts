// Snapshot files: one file per snapshot, named by index and term, written atomically (temp file,
// fsync, rename, fsync of the directory) and checked by CRC when loaded. The newest few are kept.
//
// Layouts (little endian), told apart by the version:
//   1, plaintext (older versions; a Snapshotter without keys):
//     u32 magic "TSNP" | u32 1 | u32 crc32(rest) | u32 metadataLength | metadata JSON | data
//   2, encrypted:
//     u32 magic "TSNP" | u32 2 | u32 crc32(rest) | u32 keyId | u64 index | u64 term | sealed body
//   where the sealed body is nonce | AES-256-GCM(u32 metadataLength | metadata JSON | data) | tag,
//   with the key id, index and term as associated data (sealing.ts): a snapshot renamed, relabelled
//   or sealed with another key does not open. The CRC still tells damage from tampering.
// With keys, plaintext files are read only while an older version's files are being encrypted.
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { ConfState, Snapshot, SnapshotMetadata } from '../core/types.js';
import { nodeDurableFs, type DurableFs } from './durable-fs.js';
import { SealOpenError, open, snapshotAd, startSeal, type DataKey, type OpeningKeys, type SealingKeys } from './sealing.js';

const MAGIC = 0x504e5354; // "TSNP" read little endian
const PLAIN_VERSION = 1;
const SEALED_VERSION = 2;
/** Magic, version, CRC: the start both layouts share. */
const COMMON_BYTES = 12;
const HEADER_BYTES = 16;
const SEALED_HEADER_BYTES = 32;

export class SnapshotCorruptionError extends Error {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`snapshot file ${file} is unusable: ${detail}`);
    this.name = 'SnapshotCorruptionError';
  }
}

export function snapshotFileName(index: number, term: number): string {
  return `${index.toString(16).padStart(16, '0')}-${term.toString(16).padStart(16, '0')}.snap`;
}

function parseSnapshotFileName(name: string): { index: number; term: number } | undefined {
  const m = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/.exec(name);
  return m ? { index: parseInt(m[1] as string, 16), term: parseInt(m[2] as string, 16) } : undefined;
}

function encodeBody(s: Snapshot): Buffer[] {
  const meta = Buffer.from(JSON.stringify(s.metadata), 'utf8');
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32LE(meta.length, 0);
  return [length, meta, Buffer.from(s.data.buffer, s.data.byteOffset, s.data.length)];
}

/** Work between two yields of snapshotFileSlices: a state of 100 MiB in one go stalls the event loop for 0.1 s or more. */
const SLICE_BYTES = 1024 * 1024;

/** `bytes` in views of at most SLICE_BYTES (no copy). */
function* slicesOf(bytes: Buffer): Generator<Buffer> {
  for (let at = 0; at < bytes.length; at += SLICE_BYTES) yield bytes.subarray(at, Math.min(bytes.length, at + SLICE_BYTES));
}

/**
 * The file of `s` (plaintext, version 1, without `sealWith`; else encrypted with its key and fresh
 * nonce) as the buffers to write in order. Pure; a generator that yields after each slice of work
 * (CRC and, sealed, encryption of about SLICE_BYTES), so a caller can let the event loop turn.
 */
export function* snapshotFileSlices(s: Snapshot, sealWith?: { key: DataKey; nonce: Uint8Array }): Generator<void, Buffer[]> {
  const header = Buffer.alloc(sealWith ? SEALED_HEADER_BYTES : COMMON_BYTES);
  header.writeUInt32LE(MAGIC, 0);
  const [length, meta, data] = encodeBody(s) as [Buffer, Buffer, Buffer];
  const out: Buffer[] = [header];
  let crc = 0;
  const add = (b: Buffer): void => {
    // Empty ones are left out: zlib's crc32 of cipher.final()'s empty buffer returns 0, not the seed.
    if (b.length === 0) return;
    out.push(b);
    crc = crc32(b, crc);
  };
  if (!sealWith) {
    header.writeUInt32LE(PLAIN_VERSION, 4);
    add(length);
    add(meta);
    for (const slice of slicesOf(data)) {
      add(slice);
      yield;
    }
  } else {
    const { index, term } = s.metadata;
    header.writeUInt32LE(SEALED_VERSION, 4);
    header.writeUInt32LE(sealWith.key.id, 12);
    header.writeBigUInt64LE(BigInt(index), 16);
    header.writeBigUInt64LE(BigInt(term), 24);
    crc = crc32(header.subarray(COMMON_BYTES));
    add(Buffer.from(sealWith.nonce));
    const sealing = startSeal(sealWith.key.key, sealWith.nonce, snapshotAd(sealWith.key.id, index, term));
    add(sealing.update(length));
    add(sealing.update(meta));
    for (const slice of slicesOf(data)) {
      add(sealing.update(slice));
      yield;
    }
    const { rest, tag } = sealing.finish();
    add(rest);
    add(tag);
  }
  header.writeUInt32LE(crc, 8);
  return out;
}

/** The whole file of `s` in one buffer (see snapshotFileSlices). */
export function encodeSnapshot(s: Snapshot, sealWith?: { key: DataKey; nonce: Uint8Array }): Buffer {
  const steps = snapshotFileSlices(s, sealWith);
  for (;;) {
    const step = steps.next();
    if (step.done) return Buffer.concat(step.value);
  }
}

/** snapshotFileSlices run with a turn of the event loop after each slice. */
async function encodeSnapshotYielding(s: Snapshot, sealWith?: { key: DataKey; nonce: Uint8Array }): Promise<Buffer[]> {
  const steps = snapshotFileSlices(s, sealWith);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

function validMetadata(v: unknown): SnapshotMetadata | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const m = v as Record<string, unknown>;
  const cs = m.confState;
  if (!Number.isSafeInteger(m.index) || !Number.isSafeInteger(m.term) || !isRecord(cs)) return undefined;
  if (!isStringArray(cs.voters) || !isStringArray(cs.learners)) return undefined;
  if (cs.votersOutgoing !== undefined && !isStringArray(cs.votersOutgoing)) return undefined;
  const confState: ConfState = { voters: cs.voters, learners: cs.learners };
  if (cs.votersOutgoing) confState.votersOutgoing = cs.votersOutgoing;
  return { index: m.index as number, term: m.term as number, confState };
}

/** Format version and data key id (0: plaintext) from a file's first SEALED_HEADER_BYTES (or fewer) bytes. */
export function snapshotFormat(file: string, prefix: Buffer): { version: number; keyId: number } {
  if (prefix.length < HEADER_BYTES) throw new SnapshotCorruptionError(file, `${prefix.length} bytes is shorter than the header`);
  if (prefix.readUInt32LE(0) !== MAGIC) throw new SnapshotCorruptionError(file, 'wrong magic number');
  const version = prefix.readUInt32LE(4);
  if (version === PLAIN_VERSION) return { version, keyId: 0 };
  if (version !== SEALED_VERSION) throw new SnapshotCorruptionError(file, `format version ${version} is not supported`);
  const keyId = prefix.readUInt32LE(12);
  if (keyId === 0) throw new SnapshotCorruptionError(file, 'encrypted snapshot names data key 0');
  return { version, keyId };
}

/** Metadata and data from `body` (u32 metadataLength | metadata JSON | data). */
function decodeBody(file: string, body: Buffer): Snapshot {
  if (body.length < 4) throw new SnapshotCorruptionError(file, 'shorter than its metadata length');
  const metaLength = body.readUInt32LE(0);
  if (4 + metaLength > body.length) throw new SnapshotCorruptionError(file, 'metadata runs past the end');
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.subarray(4, 4 + metaLength).toString('utf8'));
  } catch (err) {
    throw new SnapshotCorruptionError(file, `metadata is not JSON: ${(err as Error).message}`);
  }
  const metadata = validMetadata(parsed);
  if (!metadata) throw new SnapshotCorruptionError(file, 'metadata lacks index, term or confState voters/learners');
  const data = new Uint8Array(body.length - 4 - metaLength);
  data.set(body.subarray(4 + metaLength));
  return { metadata, data };
}

/**
 * The snapshot in a file. `keys` opens an encrypted file; without it only plaintext files are read,
 * with it plaintext ones only while keys.acceptPlaintext. Nothing of a file that fails its CRC or
 * its seal is decoded.
 */
export function decodeSnapshot(file: string, buf: Buffer, keys?: OpeningKeys): Snapshot {
  const { version, keyId } = snapshotFormat(file, buf);
  if (crc32(buf.subarray(COMMON_BYTES)) !== buf.readUInt32LE(8)) throw new SnapshotCorruptionError(file, 'CRC mismatch');
  if (version === PLAIN_VERSION) {
    if (keys && !keys.acceptPlaintext)
      throw new SnapshotCorruptionError(file, 'plaintext snapshot (format version 1) where snapshots are encrypted: replaced or downgraded');
    return decodeBody(file, buf.subarray(COMMON_BYTES));
  }
  if (buf.length < SEALED_HEADER_BYTES) throw new SnapshotCorruptionError(file, `${buf.length} bytes is shorter than the encrypted header`);
  const index = Number(buf.readBigUInt64LE(16));
  const term = Number(buf.readBigUInt64LE(24));
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(term)) throw new SnapshotCorruptionError(file, 'index or term exceeds 2^53');
  if (!keys) throw new SnapshotCorruptionError(file, `encrypted with data key ${keyId}, and no keys were given to open it`);
  const key = keys.key(keyId);
  if (!key) throw new SnapshotCorruptionError(file, `encrypted with data key ${keyId}, which the keyring does not hold`);
  let body: Buffer;
  try {
    body = open(key.key, buf.subarray(SEALED_HEADER_BYTES), snapshotAd(keyId, index, term));
  } catch (err) {
    if (err instanceof SealOpenError)
      throw new SnapshotCorruptionError(file, `snapshot ${index} (term ${term}) does not open with data key ${keyId}: ${err.message}; not decoded`);
    throw err;
  }
  const s = decodeBody(file, body);
  if (s.metadata.index !== index || s.metadata.term !== term) {
    throw new SnapshotCorruptionError(file, `header says index ${index} term ${term}, the sealed metadata index ${s.metadata.index} term ${s.metadata.term}`);
  }
  return s;
}

/** Told of every snapshot file written (metrics); must be cheap and must not throw. */
export interface SnapshotObserver {
  /** Sealing, writing and fsyncing one snapshot file of `bytes` took `seconds`. */
  snapshotSaved(seconds: number, bytes: number): void;
}

export interface SnapshotterOptions {
  fs?: DurableFs;
  /** How many snapshot files to keep; older ones are deleted after each save. Default 3. */
  keep?: number;
  /** Encrypts the files written and opens the files read; without it files are plaintext. */
  keys?: SealingKeys;
}

export class Snapshotter {
  private readonly fs: DurableFs;
  private readonly keep: number;
  private readonly keys: SealingKeys | undefined;
  /** Data key of each file written or read here (0: plaintext), so listing the keys in use reads few headers. */
  private readonly keyOf = new Map<string, number>();
  /** Keys of saves in progress: their files may not be listed yet. */
  private readonly writing = new Map<number, number>();
  observer: SnapshotObserver | undefined;

  constructor(
    private readonly dir: string,
    options: SnapshotterOptions = {},
  ) {
    this.fs = options.fs ?? nodeDurableFs;
    this.keep = Math.max(1, options.keep ?? 3);
    this.keys = options.keys;
  }

  /** Durably writes the snapshot file (encrypted with the current key when there are keys). */
  async save(s: Snapshot): Promise<void> {
    const name = snapshotFileName(s.metadata.index, s.metadata.term);
    const key = this.keys?.current();
    const keyId = key?.id ?? 0;
    this.writing.set(keyId, (this.writing.get(keyId) ?? 0) + 1);
    try {
      const started = performance.now();
      const buffers = await encodeSnapshotYielding(s, key ? { key, nonce: (this.keys as SealingKeys).nonce() } : undefined);
      await this.fs.writeFileAtomic(join(this.dir, name), buffers);
      this.keyOf.set(name, keyId);
      if (this.observer) {
        let bytes = 0;
        for (const b of buffers) bytes += b.length;
        this.observer.snapshotSaved((performance.now() - started) / 1000, bytes);
      }
    } finally {
      const left = (this.writing.get(keyId) ?? 1) - 1;
      if (left === 0) this.writing.delete(keyId);
      else this.writing.set(keyId, left);
    }
  }

  /**
   * Data key of each snapshot file (0: plaintext), by name, oldest first; `keyId` undefined when
   * the file's header cannot be read (a damaged file is reported by load(), when it is needed).
   */
  async keyIds(): Promise<Array<{ name: string; keyId: number | undefined }>> {
    const out: Array<{ name: string; keyId: number | undefined }> = [];
    for (const f of await this.list()) {
      let keyId = this.keyOf.get(f.name);
      if (keyId === undefined) {
        const path = join(this.dir, f.name);
        try {
          keyId = snapshotFormat(path, await this.fs.readPrefix(path, SEALED_HEADER_BYTES)).keyId;
          this.keyOf.set(f.name, keyId);
        } catch (err) {
          if (!(err instanceof SnapshotCorruptionError)) throw err;
        }
      }
      out.push({ name: f.name, keyId });
    }
    return out;
  }

  /**
   * Ids of the data keys that snapshot files on disk, or being written, need; undefined when a
   * file's header cannot be read (then no key may be dropped).
   */
  async keyIdsInUse(): Promise<Set<number> | undefined> {
    const ids = new Set(this.writing.keys());
    for (const f of await this.keyIds()) {
      if (f.keyId === undefined) return undefined;
      ids.add(f.keyId);
    }
    return ids;
  }

  /**
   * Deletes all but the newest `keep` files. Called only once the WAL records the newest snapshot,
   * so the file the WAL points to is never the one deleted.
   */
  async prune(): Promise<void> {
    const all = await this.list();
    const old = all.slice(0, Math.max(0, all.length - this.keep));
    for (const f of old) {
      await this.fs.unlink(join(this.dir, f.name));
      this.keyOf.delete(f.name);
    }
    if (old.length > 0) await this.fs.syncDir(this.dir);
  }

  /** Loads the snapshot at exactly (index, term); fails if it is missing or damaged. */
  async load(index: number, term: number): Promise<Snapshot> {
    const file = join(this.dir, snapshotFileName(index, term));
    let buf: Buffer;
    try {
      buf = await this.fs.readFile(file);
    } catch (err) {
      throw new SnapshotCorruptionError(file, `cannot be read (${(err as Error).message})`);
    }
    const s = decodeSnapshot(file, buf, this.keys);
    if (s.metadata.index !== index || s.metadata.term !== term) {
      throw new SnapshotCorruptionError(file, `holds index ${s.metadata.index} term ${s.metadata.term}`);
    }
    return s;
  }

  /** Snapshot files, oldest first. */
  async list(): Promise<Array<{ name: string; index: number; term: number }>> {
    const out: Array<{ name: string; index: number; term: number }> = [];
    for (const name of await this.fs.readdir(this.dir)) {
      const parsed = parseSnapshotFileName(name);
      if (parsed) out.push({ name, ...parsed });
    }
    return out.sort((a, b) => a.index - b.index || a.term - b.term);
  }

  /** Deletes one snapshot file (durably). */
  async remove(name: string): Promise<void> {
    await this.fs.unlink(join(this.dir, name));
    this.keyOf.delete(name);
    await this.fs.syncDir(this.dir);
  }

  /** Deletes snapshot files newer than (index, term): saved before a crash cut off their WAL marker. */
  async removeNewerThan(index: number): Promise<string[]> {
    const removed: string[] = [];
    for (const f of await this.list()) {
      if (f.index > index) {
        await this.fs.unlink(join(this.dir, f.name));
        this.keyOf.delete(f.name);
        removed.push(f.name);
      }
    }
    if (removed.length > 0) await this.fs.syncDir(this.dir);
    return removed;
  }
}
