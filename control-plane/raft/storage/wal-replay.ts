// Recovery of the WAL from segment bytes: pure, so every crash shape can be tested without disks.
//
// Torn tail vs corruption: every group-commit write is one batch, fsynced before the next batch is
// written, and only the newest segment is ever written to. So a crash can damage only the newest
// batch of the newest segment. A bad frame there is a torn tail (truncate and go on) unless a valid
// frame of a LATER batch follows it: that later batch was written after an fsync covering the
// damaged bytes, so the damage is real corruption. Damage anywhere in an older segment is always
// corruption. Both refuse recovery with the file and offset.
//
// The writer keeps zeros written ahead of its last record (preallocation, see wal.ts), so a
// segment may end in zeros: an all-zero rest of the file where a frame would start is the end of
// what was written, in any segment. A zero frame header with anything but zeros after it is
// handled like any other bad frame.
//
// Encrypted segments (format version 2, sealed-record.ts; the "sealed segment" of the errors below
// is another thing: a segment no longer written to): the CRC decides torn vs complete as above; a
// frame whose CRC matches but whose seal does not open was written like this or altered on purpose
// (a CRC is no secret), so it is corruption, named by the record's index, never a torn tail and
// never decoded. A plaintext segment is read only while an older version's log is being encrypted
// (OpeningKeys.acceptPlaintext); anywhere else it is refused as a downgrade.
//
// The one case that cannot be told apart is damage to the final batch after it was fsynced; it is
// treated as torn. That batch was acknowledged, so the Raft layer adds one more check: a hard state
// whose commit index lies beyond the recovered log is refused too.
import {
  FRAME_HEADER_BYTES,
  FrameType,
  decodeRecord,
  decodeSegmentHeader,
  readFrame,
  type SegmentHeader,
  type SnapshotMarker,
  type WalEntry,
  type WalHardState,
  type WalRecord,
} from './wal-codec.js';
import { claimedRecord, openSealedRecord } from './sealed-record.js';
import type { DataKey, OpeningKeys } from './sealing.js';

export class WalCorruptionError extends Error {
  constructor(
    readonly file: string,
    readonly offset: number,
    detail: string,
  ) {
    super(`WAL corrupt: ${file} at byte ${offset}: ${detail}; refusing to start (restore this member from a peer or backup)`);
    this.name = 'WalCorruptionError';
  }
}

export interface SegmentScan {
  header: SegmentHeader;
  records: Array<{ record: WalRecord; offset: number }>;
  /** Highest batch number seen (0 when only the header is present). */
  lastBatch: number;
  /** Length of the valid prefix of the file. */
  validLength: number;
  /** Set when the tail from validLength on is a torn write to be cut off. */
  torn?: { reason: string };
}

/** The key a segment's header asks for, or the refusal when it cannot be read (or must not be). */
function segmentKey(file: string, header: SegmentHeader, keys: OpeningKeys | undefined): DataKey | undefined {
  if (header.keyId === 0) {
    if (keys && !keys.acceptPlaintext) {
      throw new WalCorruptionError(file, 0, 'plaintext segment (format version 1) in a log whose segments are encrypted: replaced or downgraded');
    }
    return undefined;
  }
  if (!keys) throw new WalCorruptionError(file, 0, `segment is encrypted with data key ${header.keyId}, and no keys were given to open it`);
  const key = keys.key(header.keyId);
  if (!key) throw new WalCorruptionError(file, 0, `segment is encrypted with data key ${header.keyId}, which the keyring does not hold`);
  return key;
}

/**
 * Decodes one segment file; `isLast` says whether a torn tail is acceptable here. `keys` opens
 * encrypted segments; without it only plaintext segments are read.
 */
export function scanSegment(file: string, buf: Buffer, isLast: boolean, keys?: OpeningKeys): SegmentScan {
  const first = readFrame(buf, 0, 0);
  if (!first.ok || first.frame.type !== FrameType.SegmentHeader) {
    // Segments are created atomically (temp file + rename), so a bad header is never a torn write.
    throw new WalCorruptionError(file, 0, `bad segment header (${first.ok ? `frame type ${first.frame.type}` : first.reason})`);
  }
  let header: SegmentHeader;
  try {
    header = decodeSegmentHeader(first.frame.payload);
  } catch (err) {
    throw new WalCorruptionError(file, 0, (err as Error).message);
  }
  const key = segmentKey(file, header, keys);
  const identity = { seq: header.seq, firstIndex: header.firstIndex, salt: header.salt };
  const records: Array<{ record: WalRecord; offset: number; batch: number }> = [];
  let offset = first.frame.end;
  let lastBatch = 0;
  let batchComplete = true;
  // A batch is atomic: when its end is missing, every frame of it is dropped.
  const dropIncompleteBatch = (reason: string): SegmentScan => {
    let keep = records.length;
    if (!batchComplete) while (keep > 0 && records[keep - 1]?.batch === lastBatch) keep--;
    const validLength = keep < records.length ? (records[keep] as { offset: number }).offset : offset;
    const kept = records.slice(0, keep);
    const keptBatch = kept[kept.length - 1]?.batch ?? 0;
    return { header, records: kept, lastBatch: keptBatch, validLength, torn: { reason } };
  };
  while (offset < buf.length) {
    const r = readFrame(buf, offset, header.salt);
    if (!r.ok) {
      if (allZero(buf, offset)) {
        if (batchComplete) return { header, records, lastBatch, validLength: offset };
        if (!isLast) throw new WalCorruptionError(file, offset, `sealed segment ends inside batch ${lastBatch}`);
        return dropIncompleteBatch(`batch ${lastBatch} ends without its final frame`);
      }
      const claimed = key ? claimedRecord(buf, offset) : undefined;
      const reason = claimed ? `${r.reason} (its clear label, unverified, names the ${claimed})` : r.reason;
      if (!isLast) throw new WalCorruptionError(file, offset, `${reason} in a sealed segment`);
      const later = findLaterBatch(buf, offset + 1, header.salt, lastBatch + 1);
      if (later !== undefined) {
        throw new WalCorruptionError(file, offset, `${reason}, followed by an intact later write at byte ${later}`);
      }
      return dropIncompleteBatch(r.reason);
    }
    const { frame } = r;
    if (frame.type === FrameType.SegmentHeader) throw new WalCorruptionError(file, offset, 'segment header inside a segment');
    if (frame.batch < lastBatch) {
      throw new WalCorruptionError(file, offset, `batch number goes back from ${lastBatch} to ${frame.batch}`);
    }
    let record: WalRecord;
    try {
      record = key ? openSealedRecord(frame, offset, identity, key) : decodeRecord(frame);
    } catch (err) {
      // The CRC matched, so these bytes were written like this (or altered with the CRC redone):
      // a writer bug or tampering, not a torn write.
      throw new WalCorruptionError(file, offset, (err as Error).message);
    }
    if (!batchComplete && frame.batch !== lastBatch) {
      throw new WalCorruptionError(file, offset, `batch ${lastBatch} has no end but batch ${frame.batch} follows`);
    }
    records.push({ record, offset, batch: frame.batch });
    lastBatch = frame.batch;
    batchComplete = frame.final;
    offset = frame.end;
  }
  if (!batchComplete) {
    if (!isLast) throw new WalCorruptionError(file, offset, `sealed segment ends inside batch ${lastBatch}`);
    return dropIncompleteBatch(`batch ${lastBatch} ends without its final frame`);
  }
  return { header, records, lastBatch, validLength: offset };
}

/** Every byte from `from` to the end is zero (the preallocated rest of a segment). */
function allZero(buf: Buffer, from: number): boolean {
  for (let p = from; p < buf.length; p++) if (buf[p] !== 0) return false;
  return true;
}

/** Offset of a valid frame with batch > maxTornBatch at or after `from`, if any. */
function findLaterBatch(buf: Buffer, from: number, salt: number, maxTornBatch: number): number | undefined {
  for (let p = from; p + FRAME_HEADER_BYTES <= buf.length; p++) {
    const r = readFrame(buf, p, salt);
    if (r.ok && r.frame.batch > maxTornBatch) return p;
  }
  return undefined;
}

export interface WalState {
  hardState: WalHardState;
  /** Newest snapshot marker; index 0 when none. */
  snapshot: SnapshotMarker;
  /** The log after the snapshot: entries[0].index === snapshot.index + 1 when not empty. */
  entries: WalEntry[];
}

/**
 * Applies records in WAL order to an in-memory log. Later records win: entries at an index the
 * log already has replace that suffix (a new leader overwrote it); a snapshot marker drops the
 * entries it covers.
 */
export class LogReplayer {
  hardState: WalHardState = { term: 0, vote: '', commit: 0 };
  snapshot: SnapshotMarker = { index: 0, term: 0 };
  private entries: WalEntry[] = [];
  /** Index of entries[0], or of the next entry when empty. */
  private start = 1;

  apply(record: WalRecord, where: () => { file: string; offset: number }): void {
    switch (record.type) {
      case FrameType.HardState:
        this.hardState = record.hardState;
        return;
      case FrameType.Snapshot:
        this.applySnapshot(record.snapshot);
        return;
      case FrameType.Entries:
        this.applyEntries(record.entries, where);
        return;
    }
  }

  private applySnapshot(s: SnapshotMarker): void {
    // Each segment restates the newest marker at its start; seeing it again changes nothing.
    if (s.index === this.snapshot.index && s.term === this.snapshot.term) return;
    if (s.index < this.snapshot.index) return;
    this.snapshot = s;
    if (s.index < this.start - 1) {
      // The marker falls into the gap left by released segments: the entries held start later
      // and stay; a later marker must close the gap (finish() checks).
      return;
    }
    const last = this.start + this.entries.length - 1;
    const matches = s.index >= this.start && s.index <= last && this.entries[s.index - this.start]?.term === s.term;
    this.entries = matches || s.index === this.start - 1 ? this.entries.slice(s.index - this.start + 1) : [];
    this.start = s.index + 1;
  }

  private applyEntries(es: WalEntry[], where: () => { file: string; offset: number }): void {
    const first = es[0];
    if (!first) return;
    if (first.index <= this.snapshot.index) {
      const { file, offset } = where();
      throw new WalCorruptionError(file, offset, `entry ${first.index} is at or below snapshot ${this.snapshot.index}`);
    }
    const last = this.start + this.entries.length - 1;
    if (first.index > last + 1 || first.index < this.start) {
      // A gap: the entries before it lived in a released segment. A later snapshot marker must
      // cover it, which finish() checks.
      this.entries = [...es];
      this.start = first.index;
      return;
    }
    this.entries.length = first.index - this.start;
    for (const e of es) this.entries.push(e);
  }

  finish(describe: string): WalState {
    if (this.start !== this.snapshot.index + 1) {
      throw new WalCorruptionError(describe, 0, `entries ${this.snapshot.index + 1}..${this.start - 1} are missing (snapshot at ${this.snapshot.index})`);
    }
    return { hardState: this.hardState, snapshot: this.snapshot, entries: this.entries };
  }
}
