// Little-endian 64-bit integers as JavaScript numbers, for the WAL's frames and the sealing's
// associated data: indexes and terms stay below 2^53, and anything else is refused, not rounded.
const TWO_32 = 0x1_0000_0000;

export function writeU64(buf: Buffer, value: number, offset: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${value} is not a non-negative safe integer`);
  buf.writeUInt32LE(value % TWO_32, offset);
  buf.writeUInt32LE(Math.floor(value / TWO_32), offset + 4);
}

export function readU64(buf: Buffer, offset: number): number {
  const value = buf.readUInt32LE(offset) + buf.readUInt32LE(offset + 4) * TWO_32;
  if (!Number.isSafeInteger(value)) throw new RangeError(`64-bit value at offset ${offset} exceeds 2^53`);
  return value;
}
