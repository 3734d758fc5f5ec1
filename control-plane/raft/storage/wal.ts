// The write-ahead log: segment files of framed, CRC-checked records, appended with group commit.
//
// Group commit: append() queues records; one writer drains the whole queue into a single write
// followed by a single fdatasync, then resolves every caller in it. While that fsync runs, new
// appends queue up for the next batch, so under load the number of fsyncs per append falls.
// An append resolves only after its bytes are on disk. A failed write or fsync poisons the WAL:
// after a failed fsync the page cache state is unknown, so nothing more may be acknowledged.
//
// Deferred appends (sync: false) are for records whose loss costs nothing (a hard state that only
// moves the commit index, which is learnt again from the leader): they resolve at once and are
// written, in order, with the next synced batch (or at close). They are never written on their
// own, so every batch on disk is still fsynced before the next one is written: recovery's rule
// that only the newest batch can be torn holds.
//
// Preallocation: the open segment is kept zero-filled some way past its last record, by writing
// the zeros with the batch that reaches the end of what is filled. A batch written inside the
// file's size then needs one disk write at fdatasync; one that grows the file needs two (the data,
// then the inode with the new size). Measured here (ext4, 8 KiB writes each followed by
// fdatasync): 250 µs per write when the file grows each time, 140–150 µs with 256 KiB filled
// ahead, and 40 % less kernel CPU. etcd preallocates its WAL segments for the same reason.
// Recovery reads an all-zero rest of a segment as the end of what was written (wal-replay.ts).
//
// Encryption at rest: with `keys`, every segment is created encrypted with the keyring's current
// data key (its header names the key id) and every record in it is sealed (sealed-record.ts). When
// the current key changes (a rotation, promoted at a snapshot: disk-storage.ts), the next batch
// starts a new segment, so one segment never mixes keys. Without `keys` segments are plaintext
// (format version 1: benchmarks, framing tests) and encrypted ones are refused.
const NOOP = (): void => {};
import { join } from 'node:path';
import { nodeDurableFs, type DurableFile, type DurableFs } from './durable-fs.js';
import { encodeSealedRecord } from './sealed-record.js';
import type { DataKey, SealingKeys } from './sealing.js';
import {
  FrameType,
  SEGMENT_HEADER_FRAME_MAX_BYTES,
  decodeSegmentHeader,
  encodeRecord,
  readFrame,
  encodeSegmentHeader,
  parseSegmentFileName,
  segmentFileName,
  type SnapshotMarker,
  type WalEntry,
  type WalHardState,
  type WalRecord,
} from './wal-codec.js';
import { LogReplayer, WalCorruptionError, scanSegment, type WalState } from './wal-replay.js';

export interface WalOptions {
  /** A new segment is started once the current one reaches this size. Default 64 MiB. */
  segmentBytes?: number;
  fs?: DurableFs;
  /** Source of segment salts; injectable for deterministic tests. */
  randomUint32?: () => number;
  /** Zeros kept written ahead of the last record (see the header). Default 256 KiB; 0: none. */
  preallocateBytes?: number;
  /** Encrypts what is written and opens what is read (see the header). */
  keys?: SealingKeys;
}

const DEFAULT_PREALLOCATE_BYTES = 256 * 1024;
/** Entry data per record when the log is rewritten (well under the frame limit, MAX_FRAME_PAYLOAD). */
const REWRITE_RECORD_BYTES = 16 * 1024 * 1024;
const PAGE_BYTES = 4096;

export interface WalOpenResult {
  wal: Wal;
  state: WalState;
  /** Set when a torn tail was cut off during recovery. */
  truncated?: { file: string; offset: number; droppedBytes: number; reason: string };
}

interface Segment {
  name: string;
  seq: number;
  firstIndex: number;
  /** The data key of the segment's records; 0: plaintext. */
  keyId: number;
}

/** What the open segment's records are sealed for: the segment and its key (none: plaintext). */
interface OpenSegment {
  seq: number;
  firstIndex: number;
  salt: number;
  key: DataKey | undefined;
}

interface Pending {
  records: WalRecord[];
  resolve: () => void;
  reject: (err: Error) => void;
  /** False for a deferred append: it rides along with the next synced batch. */
  sync: boolean;
}

/** Told of every batch written (metrics: control-plane/metrics/raft-metrics.ts); must be cheap and must not throw. */
export interface WalObserver {
  /** `writeSeconds`: encoding and the write into the page cache; `fsyncSeconds`: the fdatasync. */
  walBatch(bytes: number, writeSeconds: number, fsyncSeconds: number): void;
}

export class WalClosedError extends Error {
  constructor() {
    super('WAL is closed');
    this.name = 'WalClosedError';
  }
}

export class Wal {
  private queue: Pending[] = [];
  private flushing = false;
  private failure: Error | undefined;
  private closed = false;
  private idle: Promise<void> = Promise.resolve();
  private markIdle: () => void = () => {};
  /** Counters for tests and metrics. */
  readonly stats = { batches: 0, appends: 0, bytes: 0, segmentsCut: 0, segmentsReleased: 0 };
  private readonly preallocateBytes: number;
  /** Zeros written with a batch that reaches `filled` (shared: it is never written to). */
  private zeros: Buffer | undefined;
  private readonly keys: SealingKeys | undefined;
  observer: WalObserver | undefined;

  private constructor(
    private readonly dir: string,
    private readonly fs: DurableFs,
    private readonly segmentBytes: number,
    private readonly randomUint32: () => number,
    private readonly segments: Segment[],
    private file: DurableFile,
    private size: number,
    /** Bytes of the open segment file: its records (`size`), then zeros. */
    private filled: number,
    /** The segment appended to: its sequence number, salt and key. */
    private tail: OpenSegment,
    private batch: number,
    private lastIndex: number,
    private hardState: WalHardState,
    private snapshot: SnapshotMarker,
    options: WalOptions,
  ) {
    this.preallocateBytes = options.preallocateBytes ?? DEFAULT_PREALLOCATE_BYTES;
    this.keys = options.keys;
  }

  /**
   * The data key ids that the segment files in `dir` name in their headers (0: plaintext), without
   * reading the records. A header that cannot be read is skipped: open() reports it.
   */
  static async keyIdsOnDisk(dir: string, fs: DurableFs = nodeDurableFs): Promise<number[]> {
    const ids: number[] = [];
    for (const name of (await fs.readdir(dir)).filter((n) => parseSegmentFileName(n) !== undefined)) {
      const prefix = await fs.readPrefix(join(dir, name), SEGMENT_HEADER_FRAME_MAX_BYTES);
      const frame = readFrame(prefix, 0, 0);
      if (!frame.ok || frame.frame.type !== FrameType.SegmentHeader) continue;
      try {
        ids.push(decodeSegmentHeader(frame.frame.payload).keyId);
      } catch {
        // Deliberately skipped: open() names the file and what is wrong with its header.
      }
    }
    return ids;
  }

  /** Recovers the WAL in `dir` (creating it when empty) and opens it for appending. */
  static async open(dir: string, options: WalOptions = {}): Promise<WalOpenResult> {
    const fs = options.fs ?? nodeDurableFs;
    const segmentBytes = options.segmentBytes ?? 64 * 1024 * 1024;
    const ahead = options.preallocateBytes;
    if (ahead !== undefined && !(Number.isInteger(ahead) && ahead >= 0))
      throw new RangeError(`WAL: preallocateBytes must be a whole number of bytes, got ${ahead}`);
    const random = options.randomUint32 ?? (() => Math.floor(Math.random() * 0x1_0000_0000));
    const names = (await fs.readdir(dir)).filter((n) => n.endsWith('.wal')).sort();
    const segments: Segment[] = [];
    for (const name of names) {
      const parsed = parseSegmentFileName(name);
      if (!parsed) throw new WalCorruptionError(join(dir, name), 0, 'file name is not <seq>-<firstIndex>.wal');
      const prev = segments[segments.length - 1];
      if (prev && parsed.seq !== prev.seq + 1) {
        throw new WalCorruptionError(join(dir, name), 0, `segment ${prev.seq + 1} is missing (found ${parsed.seq} after ${prev.seq})`);
      }
      segments.push({ name, ...parsed, keyId: 0 });
    }

    if (segments.length === 0) {
      const key = options.keys?.current();
      const seg: Segment = { name: segmentFileName(0, 1), seq: 0, firstIndex: 1, keyId: key?.id ?? 0 };
      const salt = random() >>> 0;
      const header = encodeSegmentHeader({ seq: 0, firstIndex: 1, salt, keyId: seg.keyId });
      await fs.writeFileAtomic(join(dir, seg.name), header);
      const file = await fs.openForWrite(join(dir, seg.name));
      const state: WalState = { hardState: { term: 0, vote: '', commit: 0 }, snapshot: { index: 0, term: 0 }, entries: [] };
      const size = header.length;
      const tail: OpenSegment = { seq: 0, firstIndex: 1, salt, key };
      const wal = new Wal(dir, fs, segmentBytes, random, [seg], file, size, size, tail, 1, 0, state.hardState, state.snapshot, options);
      return { wal, state };
    }

    const replayer = new LogReplayer();
    let last: { size: number; filled: number; tail: OpenSegment; batch: number } | undefined;
    let truncated: WalOpenResult['truncated'];
    for (let i = 0; i < segments.length; i++) {
      const seg = segments[i] as Segment;
      const path = join(dir, seg.name);
      const buf = await fs.readFile(path);
      const isLast = i === segments.length - 1;
      const scan = scanSegment(path, buf, isLast, options.keys);
      if (scan.header.seq !== seg.seq || scan.header.firstIndex !== seg.firstIndex) {
        throw new WalCorruptionError(path, 0, `header says segment ${scan.header.seq} at index ${scan.header.firstIndex}`);
      }
      seg.keyId = scan.header.keyId;
      for (const { record, offset } of scan.records) replayer.apply(record, () => ({ file: path, offset }));
      if (scan.torn) {
        await fs.truncate(path, scan.validLength);
        truncated = { file: path, offset: scan.validLength, droppedBytes: buf.length - scan.validLength, reason: scan.torn.reason };
      }
      if (isLast) {
        // scanSegment refused a key the keyring does not hold, so the lookup finds it here.
        const key = scan.header.keyId === 0 ? undefined : options.keys?.key(scan.header.keyId);
        const tail: OpenSegment = { seq: seg.seq, firstIndex: seg.firstIndex, salt: scan.header.salt, key };
        last = { size: scan.validLength, filled: scan.torn ? scan.validLength : buf.length, tail, batch: scan.lastBatch + 1 };
      }
    }
    const state = replayer.finish(dir);
    const lastIndex = state.snapshot.index + state.entries.length;
    if (state.hardState.commit > lastIndex) {
      throw new WalCorruptionError(
        dir,
        0,
        `hard state commit index ${state.hardState.commit} is beyond the last recovered entry ${lastIndex}: acknowledged entries are lost`,
      );
    }
    const tail = segments[segments.length - 1] as Segment;
    const file = await fs.openForWrite(join(dir, tail.name));
    const l = last as { size: number; filled: number; tail: OpenSegment; batch: number };
    const wal = new Wal(dir, fs, segmentBytes, random, segments, file, l.size, l.filled, l.tail, l.batch, lastIndex, state.hardState, state.snapshot, options);
    return truncated ? { wal, state, truncated } : { wal, state };
  }

  /**
   * Appends records durably; resolves after they are fsynced (group commit with concurrent
   * callers). With `sync: false` it resolves at once and the records are written with the next
   * synced append (see the header): a crash before that loses them.
   */
  append(records: WalRecord[], options: { sync?: boolean } = {}): Promise<void> {
    if (this.closed) return Promise.reject(new WalClosedError());
    if (this.failure) return Promise.reject(this.failure);
    if (options.sync === false) {
      this.queue.push({ records, resolve: NOOP, reject: NOOP, sync: false });
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ records, resolve, reject, sync: true });
      this.startFlushing();
    });
  }

  private startFlushing(): void {
    if (this.flushing) return;
    this.flushing = true;
    this.idle = new Promise((r) => (this.markIdle = r));
    // A microtask lets appends issued in the same turn share the first batch.
    queueMicrotask(() => void this.flushLoop());
  }

  /** Deletes segments holding only entries at or below `index` (a durable snapshot covers them). */
  async releaseTo(index: number): Promise<void> {
    // Oldest first, so a crash midway leaves a contiguous run of segments.
    while (this.segments.length > 1) {
      const next = this.segments[1] as Segment;
      if (next.firstIndex > index + 1) break;
      const old = this.segments.shift() as Segment;
      await this.fs.unlink(join(this.dir, old.name));
      this.stats.segmentsReleased++;
    }
    await this.fs.syncDir(this.dir);
  }

  segmentNames(): string[] {
    return this.segments.map((s) => s.name);
  }

  /** Ids of the data keys the segments still on disk were encrypted with (0: plaintext). */
  segmentKeyIds(): Set<number> {
    return new Set(this.segments.map((s) => s.keyId));
  }

  /** Waits for queued appends, then closes the file; later appends fail. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Deferred records still queued are written (and synced) before the file closes.
    if (this.queue.length > 0 && !this.failure) this.startFlushing();
    await this.idle;
    await this.file.close();
  }

  private async flushLoop(): Promise<void> {
    // Deferred records alone do not start a batch (but are flushed at close).
    while (this.queue.length > 0 && (this.closed || this.queue.some((p) => p.sync))) {
      const batch = this.queue;
      this.queue = [];
      try {
        if (this.failure) throw this.failure;
        if (this.size >= this.segmentBytes || this.keyChanged()) await this.cut();
        const started = performance.now();
        const records = batch.flatMap((p) => p.records);
        const buffers: Buffer[] = [];
        let bytes = 0;
        for (const [i, r] of records.entries()) {
          const frame = this.encode(r, i === records.length - 1, this.size + bytes);
          buffers.push(frame);
          bytes += frame.length;
        }
        const zeros = this.zerosAfter(this.size + bytes);
        if (zeros) buffers.push(zeros);
        await this.file.writeAt(buffers, this.size);
        const written = performance.now();
        const synced = await this.file.datasync();
        this.observer?.walBatch(bytes, (written - started) / 1000, typeof synced === 'number' ? synced : (performance.now() - written) / 1000);
        this.size += bytes;
        this.batch++;
        this.stats.batches++;
        this.stats.appends += batch.length;
        this.stats.bytes += bytes;
        for (const p of batch) p.resolve();
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        this.failure ??= new Error(`WAL write failed, no further writes accepted: ${error.message}`);
        for (const p of [...batch, ...this.queue]) p.reject(this.failure);
        this.queue = [];
      }
    }
    this.flushing = false;
    this.markIdle();
  }

  /** Zeros to write after a batch ending at `end`, when it reaches the end of what is filled. */
  private zerosAfter(end: number): Buffer | undefined {
    if (this.preallocateBytes === 0 || end <= this.filled) return undefined;
    const target = Math.ceil((end + this.preallocateBytes) / PAGE_BYTES) * PAGE_BYTES;
    this.zeros ??= Buffer.alloc(this.preallocateBytes + PAGE_BYTES);
    this.filled = target;
    return this.zeros.subarray(0, target - end);
  }

  /** The keyring's current key is not the one of the open segment: the next batch goes into a new segment. */
  private keyChanged(): boolean {
    return this.keys !== undefined && this.tail.key?.id !== this.keys.current().id;
  }

  /** The frame of `r` at `offset` of the open segment (see encodeAt). */
  private encode(r: WalRecord, final: boolean, offset: number): Buffer {
    // Track what a new segment must restate at its start, so older segments can be released.
    if (r.type === FrameType.Entries) {
      const lastEntry = r.entries[r.entries.length - 1];
      if (lastEntry) this.lastIndex = lastEntry.index;
    } else if (r.type === FrameType.HardState) {
      this.hardState = r.hardState;
    } else {
      this.snapshot = r.snapshot;
      if (this.lastIndex < r.snapshot.index) this.lastIndex = r.snapshot.index;
    }
    return this.encodeAt(r, this.tail, offset, this.batch, final);
  }

  /** A record's frame at `offset` of `segment`: sealed for exactly that place when the segment has a key. */
  private encodeAt(r: WalRecord, segment: OpenSegment, offset: number, batch: number, final: boolean): Buffer {
    if (!segment.key) return encodeRecord(r, batch, segment.salt, final);
    const nonce = (this.keys as SealingKeys).nonce();
    return encodeSealedRecord(r, { segment, offset, batch, final }, segment.key, nonce);
  }

  /** Starts a new segment (with the current key) that begins by restating the hard state and the newest snapshot marker. */
  private async cut(): Promise<void> {
    const restated: WalRecord[] = [
      { type: FrameType.Snapshot, snapshot: this.snapshot },
      { type: FrameType.HardState, hardState: this.hardState },
    ];
    await this.startSegment(this.lastIndex + 1, restated);
    this.stats.segmentsCut++;
  }

  /**
   * Writes a new segment holding `records` as its first batch (atomically: temp file and rename)
   * and makes it the open one. Callers hold the flush loop or run before it starts.
   */
  private async startSegment(firstIndex: number, records: WalRecord[]): Promise<Segment> {
    const seq = (this.segments[this.segments.length - 1] as Segment).seq + 1;
    const key = this.keys?.current();
    const segment: OpenSegment = { seq, firstIndex, salt: this.randomUint32() >>> 0, key };
    const name = segmentFileName(seq, firstIndex);
    const parts = [encodeSegmentHeader({ seq, firstIndex, salt: segment.salt, keyId: key?.id ?? 0 })];
    let offset = (parts[0] as Buffer).length;
    for (const [i, r] of records.entries()) {
      const frame = this.encodeAt(r, segment, offset, 1, i === records.length - 1);
      parts.push(frame);
      offset += frame.length;
    }
    await this.fs.writeFileAtomic(join(this.dir, name), Buffer.concat(parts));
    await this.file.close();
    this.file = await this.fs.openForWrite(join(this.dir, name));
    const entry: Segment = { name, seq, firstIndex, keyId: key?.id ?? 0 };
    this.segments.push(entry);
    this.tail = segment;
    this.size = offset;
    this.filled = offset;
    this.batch = 2;
    return entry;
  }

  /**
   * Rewrites the whole log into one new segment with the current key, then deletes every older
   * segment: after it no byte of the log is left in an older format or under an older key. For
   * sealing an older version's plaintext log at open, before anything is appended. `entries` are
   * the entries after the snapshot, as recovered by open(). A crash midway leaves the older
   * segments and the new one, which restates all they hold, so replaying both gives the same state.
   */
  async rewriteAll(entries: readonly WalEntry[]): Promise<void> {
    if (this.flushing || this.queue.length > 0) throw new Error('WAL: rewriteAll runs only before anything is appended');
    const records: WalRecord[] = [
      { type: FrameType.Snapshot, snapshot: this.snapshot },
      ...chunkEntries(entries).map((chunk): WalRecord => ({ type: FrameType.Entries, entries: chunk })),
      { type: FrameType.HardState, hardState: this.hardState },
    ];
    const older = [...this.segments];
    const fresh = await this.startSegment(this.snapshot.index + 1, records);
    for (const old of older) await this.fs.unlink(join(this.dir, old.name));
    await this.fs.syncDir(this.dir);
    this.segments.splice(0, this.segments.length, fresh);
    this.stats.segmentsReleased += older.length;
  }
}

/** Entries in records of at most REWRITE_RECORD_BYTES of data each (a record is one frame, capped in size). */
function chunkEntries(entries: readonly WalEntry[]): WalEntry[][] {
  const chunks: WalEntry[][] = [];
  let current: WalEntry[] = [];
  let bytes = 0;
  for (const e of entries) {
    if (current.length > 0 && bytes + e.data.length > REWRITE_RECORD_BYTES) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(e);
    bytes += e.data.length;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}
