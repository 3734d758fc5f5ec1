// Netlink framing: a header, a fixed family struct, then type-length-value attributes, each
// padded to 4 bytes, little-endian as on every machine Tessera runs on (netlink uses host order).

import { NLA_HDRLEN, NLMSG_HDRLEN } from './constants.js';

const align4 = (n: number): number => (n + 3) & ~3;

/** One attribute: its payload, or nested attributes. */
export interface Attribute {
  type: number;
  value: Buffer | Attribute[];
}

export function attributesLength(attributes: Attribute[]): number {
  return attributes.reduce((sum, a) => sum + align4(attributeLength(a)), 0);
}

function attributeLength(attribute: Attribute): number {
  return NLA_HDRLEN + (Buffer.isBuffer(attribute.value) ? attribute.value.length : attributesLength(attribute.value));
}

function writeAttributes(target: Buffer, offset: number, attributes: Attribute[]): number {
  for (const attribute of attributes) {
    const length = attributeLength(attribute);
    target.writeUInt16LE(length, offset);
    target.writeUInt16LE(attribute.type, offset + 2);
    if (Buffer.isBuffer(attribute.value)) attribute.value.copy(target, offset + NLA_HDRLEN);
    else writeAttributes(target, offset + NLA_HDRLEN, attribute.value);
    offset += align4(length);
  }
  return offset;
}

/**
 * A complete request with sequence number and port id 0: the native transport numbers the
 * requests of a batch itself and adds NLM_F_REQUEST | NLM_F_ACK (set here too, so the bytes
 * are the whole request).
 */
export function message(type: number, flags: number, header: Buffer, attributes: Attribute[]): Buffer {
  const length = NLMSG_HDRLEN + align4(header.length) + attributesLength(attributes);
  const out = Buffer.alloc(length);
  out.writeUInt32LE(length, 0);
  out.writeUInt16LE(type, 4);
  out.writeUInt16LE(flags, 6);
  header.copy(out, NLMSG_HDRLEN);
  writeAttributes(out, NLMSG_HDRLEN + align4(header.length), attributes);
  return out;
}

export function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value);
  return b;
}

/** NUL-terminated, as the kernel's nla_strscpy expects. */
export function cString(text: string): Buffer {
  return Buffer.concat([Buffer.from(text, 'utf8'), Buffer.alloc(1)]);
}

export function ipv4Bytes(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0);
  return b;
}

/** Attributes of a received message, after its fixed struct, by type (nested ones stay raw). */
export function parseAttributes(buffer: Buffer, start: number): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let offset = start;
  while (offset + NLA_HDRLEN <= buffer.length) {
    const length = buffer.readUInt16LE(offset);
    if (length < NLA_HDRLEN || offset + length > buffer.length) break;
    // The top two bits are NLA_F_NESTED / NLA_F_NET_BYTEORDER, not part of the type.
    out.set(buffer.readUInt16LE(offset + 2) & 0x3fff, buffer.subarray(offset + NLA_HDRLEN, offset + length));
    offset += align4(length);
  }
  return out;
}
