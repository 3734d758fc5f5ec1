// Byte layout of the write-ahead log. Pure functions only: framing, CRC and payload codecs.
//
// A segment file is a sequence of frames:
//   u32 payloadLength | u8 type (+0x80 on the last frame of a batch) | u32 batch | u32 crc | payload
// (little endian). `batch` numbers the group-commit writes within one segment (0 is the segment
// header); recovery uses it to tell a torn final write from damage to an earlier, fsynced one,
// and the end-of-batch flag to drop an incomplete batch as a whole (a batch is atomic).
// `crc` is CRC-32 over type, batch and payload, seeded with the segment's random salt, so bytes a
// client stored inside an entry can never pass for a frame of this segment.
//
// Segment format versions: 1 holds records in plaintext (written by older versions, and by a Wal
// opened without keys: benchmarks and tests of the framing); 2 names the data key (u32 key id,
// never 0) that sealed every record of the segment (sealed-record.ts). The CRC stays: it tells a
// torn write from a complete one; the seal tells whether a complete one is authentic.
import { crc32 } from 'node:zlib';
import type { Entry, EntryType, HardState } from '../core/types.js';
import { readU64, writeU64 } from './u64.js';

export const FRAME_HEADER_BYTES = 13;
/** No frame is larger than this; a larger length field is garbage, not a frame. */
export const MAX_FRAME_PAYLOAD = 256 * 1024 * 1024;
const SEGMENT_MAGIC = 0x4c415754; // "TWAL" read little endian
const PLAIN_SEGMENT_VERSION = 1;
const SEALED_SEGMENT_VERSION = 2;
const PLAIN_HEADER_BYTES = 28;
const SEALED_HEADER_BYTES = 32;
/** The segment header's frame is at most this long (an encrypted segment's). */
export const SEGMENT_HEADER_FRAME_MAX_BYTES = FRAME_HEADER_BYTES + SEALED_HEADER_BYTES;

export enum FrameType {
  SegmentHeader = 1,
  Entries = 2,
  HardState = 3,
  Snapshot = 4,
}

const FRAME_TYPES = new Set<number>([FrameType.SegmentHeader, FrameType.Entries, FrameType.HardState, FrameType.Snapshot]);

export type WalEntry = Entry;
export type WalHardState = HardState;

const ENTRY_TYPE_CODES: Record<EntryType, number> = { normal: 0, 'conf-change': 1 };
const ENTRY_TYPES: EntryType[] = ['normal', 'conf-change'];

export interface SnapshotMarker {
  index: number;
  term: number;
}

export interface SegmentHeader {
  seq: number;
  /** Index the first entry appended to this segment was expected to have (lastIndex + 1 at cut time). */
  firstIndex: number;
  salt: number;
  /** The data key sealing the segment's records; 0: plaintext (format version 1). */
  keyId: number;
}

export type WalRecord =
  | { type: FrameType.Entries; entries: WalEntry[] }
  | { type: FrameType.HardState; hardState: WalHardState }
  | { type: FrameType.Snapshot; snapshot: SnapshotMarker };

const FINAL_FLAG = 0x80;

/** The type byte a frame is written with. */
export function frameTypeByte(type: FrameType, final: boolean): number {
  return final ? type | FINAL_FLAG : type;
}

export interface DecodedFrame {
  type: FrameType;
  batch: number;
  /** The last frame of its batch. */
  final: boolean;
  payload: Buffer;
  /** Offset just past this frame. */
  end: number;
}

export type FrameReadResult = { ok: true; frame: DecodedFrame } | { ok: false; reason: string };

function frameCrc(header: Buffer, payload: Uint8Array, salt: number): number {
  // Covers type and batch (header bytes 4..9) and the payload.
  return crc32(payload, crc32(header.subarray(4, 9), salt));
}

export function encodeFrame(type: FrameType, batch: number, payload: Buffer, salt: number, final = true): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  out.writeUInt32LE(payload.length, 0);
  out.writeUInt8(frameTypeByte(type, final), 4);
  out.writeUInt32LE(batch >>> 0, 5);
  payload.copy(out, FRAME_HEADER_BYTES);
  out.writeUInt32LE(frameCrc(out, payload, salt), 9);
  return out;
}

/** A frame whose payload is `parts` laid end to end (one allocation, no payload buffer of its own). */
export function encodeFrameParts(type: FrameType, batch: number, parts: readonly Uint8Array[], salt: number, final: boolean): Buffer {
  const length = parts.reduce((n, p) => n + p.length, 0);
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + length);
  out.writeUInt32LE(length, 0);
  out.writeUInt8(frameTypeByte(type, final), 4);
  out.writeUInt32LE(batch >>> 0, 5);
  let at = FRAME_HEADER_BYTES;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  out.writeUInt32LE(frameCrc(out, out.subarray(FRAME_HEADER_BYTES), salt), 9);
  return out;
}

/** Reads the frame at `offset`; a short, oversized, unknown-type or CRC-failing frame is reported, never thrown. */
export function readFrame(buf: Buffer, offset: number, salt: number): FrameReadResult {
  if (offset + FRAME_HEADER_BYTES > buf.length) return { ok: false, reason: 'truncated frame header' };
  const length = buf.readUInt32LE(offset);
  const typeByte = buf.readUInt8(offset + 4);
  const type = typeByte & ~FINAL_FLAG;
  if (!FRAME_TYPES.has(type)) return { ok: false, reason: `unknown frame type ${type}` };
  if (length > MAX_FRAME_PAYLOAD) return { ok: false, reason: `frame length ${length} is impossible` };
  const end = offset + FRAME_HEADER_BYTES + length;
  if (end > buf.length) return { ok: false, reason: `truncated frame (needs ${length} payload bytes, file ends first)` };
  const header = buf.subarray(offset, offset + FRAME_HEADER_BYTES);
  const payload = buf.subarray(offset + FRAME_HEADER_BYTES, end);
  const stored = buf.readUInt32LE(offset + 9);
  if (frameCrc(header, payload, salt) !== stored) return { ok: false, reason: 'CRC mismatch' };
  const final = (typeByte & FINAL_FLAG) !== 0;
  return { ok: true, frame: { type: type as FrameType, batch: buf.readUInt32LE(offset + 5), final, payload, end } };
}

export function encodeSegmentHeader(h: SegmentHeader): Buffer {
  const sealed = h.keyId !== 0;
  const payload = Buffer.alloc(sealed ? SEALED_HEADER_BYTES : PLAIN_HEADER_BYTES);
  payload.writeUInt32LE(SEGMENT_MAGIC, 0);
  payload.writeUInt32LE(sealed ? SEALED_SEGMENT_VERSION : PLAIN_SEGMENT_VERSION, 4);
  writeU64(payload, h.seq, 8);
  writeU64(payload, h.firstIndex, 16);
  payload.writeUInt32LE(h.salt >>> 0, 24);
  if (sealed) payload.writeUInt32LE(h.keyId, 28);
  // The header itself is checked with salt 0: the salt is only known once it is read.
  return encodeFrame(FrameType.SegmentHeader, 0, payload, 0);
}

export function decodeSegmentHeader(payload: Buffer): SegmentHeader {
  if (payload.length < 8) throw new Error(`segment header payload is ${payload.length} bytes, too short for magic and version`);
  if (payload.readUInt32LE(0) !== SEGMENT_MAGIC) throw new Error('segment header has a wrong magic number');
  const version = payload.readUInt32LE(4);
  if (version !== PLAIN_SEGMENT_VERSION && version !== SEALED_SEGMENT_VERSION) throw new Error(`segment format version ${version} is not supported`);
  const expected = version === SEALED_SEGMENT_VERSION ? SEALED_HEADER_BYTES : PLAIN_HEADER_BYTES;
  if (payload.length !== expected) throw new Error(`segment header (version ${version}) payload is ${payload.length} bytes, expected ${expected}`);
  const keyId = version === SEALED_SEGMENT_VERSION ? payload.readUInt32LE(28) : 0;
  if (version === SEALED_SEGMENT_VERSION && keyId === 0) throw new Error('sealed segment header names data key 0');
  return { seq: readU64(payload, 8), firstIndex: readU64(payload, 16), salt: payload.readUInt32LE(24), keyId };
}

export function encodeEntries(entries: readonly WalEntry[]): Buffer {
  let size = 4;
  for (const e of entries) size += 21 + e.data.length;
  const out = Buffer.allocUnsafe(size);
  out.writeUInt32LE(entries.length, 0);
  let o = 4;
  for (const e of entries) {
    writeU64(out, e.term, o);
    writeU64(out, e.index, o + 8);
    out.writeUInt8(ENTRY_TYPE_CODES[e.type], o + 16);
    out.writeUInt32LE(e.data.length, o + 17);
    out.set(e.data, o + 21);
    o += 21 + e.data.length;
  }
  return out;
}

export function decodeEntries(payload: Buffer): WalEntry[] {
  const fail = (why: string): never => {
    throw new Error(`entries record: ${why}`);
  };
  if (payload.length < 4) fail('shorter than its count');
  const count = payload.readUInt32LE(0);
  const entries: WalEntry[] = [];
  let o = 4;
  for (let i = 0; i < count; i++) {
    if (o + 21 > payload.length) fail(`entry ${i} of ${count} is cut short`);
    const length = payload.readUInt32LE(o + 17);
    if (o + 21 + length > payload.length) fail(`entry ${i} data is cut short`);
    // Copy, so entries do not pin the whole segment buffer in memory.
    const data = new Uint8Array(length);
    data.set(payload.subarray(o + 21, o + 21 + length));
    const type = ENTRY_TYPES[payload.readUInt8(o + 16)];
    if (!type) fail(`entry ${i} has unknown type ${payload.readUInt8(o + 16)}`);
    const entry: WalEntry = { term: readU64(payload, o), index: readU64(payload, o + 8), type: type as EntryType, data };
    const prev = entries[entries.length - 1];
    if (prev && entry.index !== prev.index + 1) fail(`entry indexes jump from ${prev.index} to ${entry.index}`);
    entries.push(entry);
    o += 21 + length;
  }
  if (o !== payload.length) fail(`${payload.length - o} trailing bytes`);
  return entries;
}

export function encodeHardState(h: WalHardState): Buffer {
  const vote = Buffer.from(h.vote, 'utf8');
  const out = Buffer.allocUnsafe(20 + vote.length);
  writeU64(out, h.term, 0);
  writeU64(out, h.commit, 8);
  out.writeUInt32LE(vote.length, 16);
  vote.copy(out, 20);
  return out;
}

export function decodeHardState(payload: Buffer): WalHardState {
  if (payload.length < 20) throw new Error(`hard state record is ${payload.length} bytes, at least 20 expected`);
  const voteLength = payload.readUInt32LE(16);
  if (payload.length !== 20 + voteLength) throw new Error(`hard state record is ${payload.length} bytes, expected ${20 + voteLength}`);
  return { term: readU64(payload, 0), vote: payload.subarray(20).toString('utf8'), commit: readU64(payload, 8) };
}

export function encodeSnapshotMarker(s: SnapshotMarker): Buffer {
  const out = Buffer.allocUnsafe(16);
  writeU64(out, s.index, 0);
  writeU64(out, s.term, 8);
  return out;
}

export function decodeSnapshotMarker(payload: Buffer): SnapshotMarker {
  if (payload.length !== 16) throw new Error(`snapshot record is ${payload.length} bytes, expected 16`);
  return { index: readU64(payload, 0), term: readU64(payload, 8) };
}

/** A record's payload as it is framed in a plaintext segment, and sealed in a sealed one. */
export function encodeRecordPayload(record: WalRecord): Buffer {
  switch (record.type) {
    case FrameType.Entries:
      return encodeEntries(record.entries);
    case FrameType.HardState:
      return encodeHardState(record.hardState);
    case FrameType.Snapshot:
      return encodeSnapshotMarker(record.snapshot);
  }
}

export function decodeRecordPayload(type: FrameType, payload: Buffer): WalRecord {
  switch (type) {
    case FrameType.Entries:
      return { type: FrameType.Entries, entries: decodeEntries(payload) };
    case FrameType.HardState:
      return { type: FrameType.HardState, hardState: decodeHardState(payload) };
    case FrameType.Snapshot:
      return { type: FrameType.Snapshot, snapshot: decodeSnapshotMarker(payload) };
    case FrameType.SegmentHeader:
      throw new Error('a segment header may only start a segment');
  }
}

/** A plaintext record frame (segment format version 1). */
export function encodeRecord(record: WalRecord, batch: number, salt: number, final: boolean): Buffer {
  return encodeFrame(record.type, batch, encodeRecordPayload(record), salt, final);
}

/** The record of a plaintext frame (segment format version 1). */
export function decodeRecord(frame: DecodedFrame): WalRecord {
  return decodeRecordPayload(frame.type, frame.payload);
}

/** Segment files are named by sequence number and first index, both hex, so they sort by name. */
export function segmentFileName(seq: number, firstIndex: number): string {
  return `${seq.toString(16).padStart(16, '0')}-${firstIndex.toString(16).padStart(16, '0')}.wal`;
}

export function parseSegmentFileName(name: string): { seq: number; firstIndex: number } | undefined {
  const m = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/.exec(name);
  if (!m) return undefined;
  return { seq: parseInt(m[1] as string, 16), firstIndex: parseInt(m[2] as string, 16) };
}
