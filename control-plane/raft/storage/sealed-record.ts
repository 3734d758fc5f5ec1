// Sealed WAL records (segment format version 2). Pure. A frame's payload is
//   label (24 bytes, clear) | nonce (12) | AES-256-GCM(record payload) | tag (16)
// The label (sealing.ts RecordLabel: the record's index range and term) stays readable so a refusal
// can name the index; it is authenticated with the record's place as associated data: the key id,
// the segment's header (sequence number, first index, salt), the frame's byte offset, type byte and
// batch. A record copied to another offset, segment or batch, or relabelled, or a segment header
// edited, fails to open; so does a record sealed with another key. After opening, the content must agree with the label (else a writer bug).
import {
  SealOpenError,
  decodeRecordLabel,
  encodeRecordLabel,
  open,
  sealParts,
  walRecordAd,
  RECORD_LABEL_BYTES,
  type DataKey,
  type RecordLabel,
} from './sealing.js';
import {
  FRAME_HEADER_BYTES,
  FrameType,
  decodeRecordPayload,
  encodeFrameParts,
  encodeRecordPayload,
  frameTypeByte,
  type DecodedFrame,
  type WalRecord,
} from './wal-codec.js';

/** The segment a record is sealed into. */
/** The segment a record is sealed into: what its header says. */
export interface SegmentIdentity {
  seq: number;
  firstIndex: number;
  salt: number;
}

export interface FramePosition {
  segment: SegmentIdentity;
  /** Byte offset of the frame in its segment file. */
  offset: number;
  batch: number;
  final: boolean;
}

export function recordLabel(record: WalRecord): RecordLabel {
  switch (record.type) {
    case FrameType.Entries: {
      const first = record.entries[0];
      const last = record.entries[record.entries.length - 1];
      return { index: first?.index ?? 0, lastIndex: last?.index ?? 0, term: last?.term ?? 0 };
    }
    case FrameType.HardState:
      return { index: record.hardState.commit, lastIndex: record.hardState.commit, term: record.hardState.term };
    case FrameType.Snapshot:
      return { index: record.snapshot.index, lastIndex: record.snapshot.index, term: record.snapshot.term };
  }
}

/** Names a record by its label, for errors: "entries 4..6 (term 2)". */
export function describeRecord(type: FrameType, label: RecordLabel): string {
  switch (type) {
    case FrameType.Entries:
      return label.index === label.lastIndex
        ? `record of entry ${label.index} (term ${label.term})`
        : `record of entries ${label.index}..${label.lastIndex} (last term ${label.term})`;
    case FrameType.HardState:
      return `hard state record (term ${label.term}, commit ${label.index})`;
    case FrameType.Snapshot:
      return `snapshot marker record (index ${label.index}, term ${label.term})`;
    case FrameType.SegmentHeader:
      return 'segment header';
  }
}

/** The frame of `record` sealed with `key` for its place; `nonce` must be fresh (never used with this key). */
export function encodeSealedRecord(record: WalRecord, at: FramePosition, key: DataKey, nonce: Uint8Array): Buffer {
  const label = recordLabel(record);
  const ad = walRecordAd(
    {
      keyId: key.id,
      segmentSeq: at.segment.seq,
      segmentFirstIndex: at.segment.firstIndex,
      segmentSalt: at.segment.salt,
      offset: at.offset,
      typeByte: frameTypeByte(record.type, at.final),
      batch: at.batch,
    },
    label,
  );
  const { ciphertext, tag } = sealParts(key.key, nonce, encodeRecordPayload(record), ad);
  return encodeFrameParts(record.type, at.batch, [encodeRecordLabel(label), nonce, ...ciphertext, tag], at.segment.salt, at.final);
}

/**
 * The record in a sealed frame (whose CRC already matched) at `offset` of `segment`. Throws an
 * Error naming the record by its label when it does not open or does not match its label; no
 * byte of an unauthenticated record is decoded.
 */
export function openSealedRecord(frame: DecodedFrame, offset: number, segment: SegmentIdentity, key: DataKey): WalRecord {
  const label = decodeRecordLabel(frame.payload);
  if (!label) throw new Error(`sealed ${describeRecord(frame.type, { index: 0, lastIndex: 0, term: 0 })} is shorter than its label`);
  const what = describeRecord(frame.type, label);
  const ad = walRecordAd(
    {
      keyId: key.id,
      segmentSeq: segment.seq,
      segmentFirstIndex: segment.firstIndex,
      segmentSalt: segment.salt,
      offset,
      typeByte: frameTypeByte(frame.type, frame.final),
      batch: frame.batch,
    },
    label,
  );
  let plain: Buffer;
  try {
    plain = open(key.key, frame.payload.subarray(RECORD_LABEL_BYTES), ad);
  } catch (err) {
    if (err instanceof SealOpenError) throw new Error(`${what} does not open with data key ${key.id}: ${err.message}; not decoded`);
    throw err;
  }
  const record = decodeRecordPayload(frame.type, plain);
  const actual = recordLabel(record);
  if (actual.index !== label.index || actual.lastIndex !== label.lastIndex || actual.term !== label.term) {
    throw new Error(`${what} holds ${describeRecord(frame.type, actual)} (a writer bug)`);
  }
  return record;
}

/** Best effort, for errors about a frame that failed its CRC: what its clear label claims, unverified. */
export function claimedRecord(buf: Buffer, offset: number): string | undefined {
  const labelAt = offset + FRAME_HEADER_BYTES;
  if (labelAt + RECORD_LABEL_BYTES > buf.length) return undefined;
  const type = (buf[offset + 4] as number) & 0x7f;
  if (type !== (FrameType.Entries as number) && type !== (FrameType.HardState as number) && type !== (FrameType.Snapshot as number)) return undefined;
  const label = decodeRecordLabel(buf.subarray(labelAt, labelAt + RECORD_LABEL_BYTES));
  return label ? describeRecord(type as FrameType, label) : undefined;
}
