// Snapshot files: one file per snapshot, named by index and term, written atomically (temp file,
// fsync, rename, fsync of the directory) and checked by CRC when loaded. The newest few are kept.
//
// Layout: u32 magic "TSNP" | u32 version | u32 crc32(rest) | u32 metadataLength | metadata JSON | data
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { ConfState, Snapshot, SnapshotMetadata } from '../core/types.js';
import { nodeDurableFs, type DurableFs } from './durable-fs.js';

const MAGIC = 0x504e5354; // "TSNP" read little endian
const VERSION = 1;
const HEADER_BYTES = 16;

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

export function encodeSnapshot(s: Snapshot): Buffer {
  const meta = Buffer.from(JSON.stringify(s.metadata), 'utf8');
  const out = Buffer.allocUnsafe(HEADER_BYTES + meta.length + s.data.length);
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt32LE(VERSION, 4);
  out.writeUInt32LE(meta.length, 12);
  meta.copy(out, HEADER_BYTES);
  out.set(s.data, HEADER_BYTES + meta.length);
  out.writeUInt32LE(crc32(out.subarray(12)), 8);
  return out;
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

export function decodeSnapshot(file: string, buf: Buffer): Snapshot {
  if (buf.length < HEADER_BYTES) throw new SnapshotCorruptionError(file, `${buf.length} bytes is shorter than the header`);
  if (buf.readUInt32LE(0) !== MAGIC) throw new SnapshotCorruptionError(file, 'wrong magic number');
  const version = buf.readUInt32LE(4);
  if (version !== VERSION) throw new SnapshotCorruptionError(file, `format version ${version} is not supported`);
  if (crc32(buf.subarray(12)) !== buf.readUInt32LE(8)) throw new SnapshotCorruptionError(file, 'CRC mismatch');
  const metaLength = buf.readUInt32LE(12);
  if (HEADER_BYTES + metaLength > buf.length) throw new SnapshotCorruptionError(file, 'metadata runs past the end');
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.subarray(HEADER_BYTES, HEADER_BYTES + metaLength).toString('utf8'));
  } catch (err) {
    throw new SnapshotCorruptionError(file, `metadata is not JSON: ${(err as Error).message}`);
  }
  const metadata = validMetadata(parsed);
  if (!metadata) throw new SnapshotCorruptionError(file, 'metadata lacks index, term or confState voters/learners');
  const data = new Uint8Array(buf.length - HEADER_BYTES - metaLength);
  data.set(buf.subarray(HEADER_BYTES + metaLength));
  return { metadata, data };
}

export interface SnapshotterOptions {
  fs?: DurableFs;
  /** How many snapshot files to keep; older ones are deleted after each save. Default 3. */
  keep?: number;
}

export class Snapshotter {
  private readonly fs: DurableFs;
  private readonly keep: number;

  constructor(
    private readonly dir: string,
    options: SnapshotterOptions = {},
  ) {
    this.fs = options.fs ?? nodeDurableFs;
    this.keep = Math.max(1, options.keep ?? 3);
  }

  /** Durably writes the snapshot file. */
  async save(s: Snapshot): Promise<void> {
    await this.fs.writeFileAtomic(join(this.dir, snapshotFileName(s.metadata.index, s.metadata.term)), encodeSnapshot(s));
  }

  /**
   * Deletes all but the newest `keep` files. Called only once the WAL records the newest snapshot,
   * so the file the WAL points to is never the one deleted.
   */
  async prune(): Promise<void> {
    const all = await this.list();
    const old = all.slice(0, Math.max(0, all.length - this.keep));
    for (const f of old) await this.fs.unlink(join(this.dir, f.name));
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
    const s = decodeSnapshot(file, buf);
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

  /** Deletes snapshot files newer than (index, term): saved before a crash cut off their WAL marker. */
  async removeNewerThan(index: number): Promise<string[]> {
    const removed: string[] = [];
    for (const f of await this.list()) {
      if (f.index > index) {
        await this.fs.unlink(join(this.dir, f.name));
        removed.push(f.name);
      }
    }
    if (removed.length > 0) await this.fs.syncDir(this.dir);
    return removed;
  }
}
