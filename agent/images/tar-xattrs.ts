// Extended attributes of a layer's entries, read from the tar stream's pax headers
// (SCHILY.xattr.NAME records, as Docker, containerd, buildah and our own layer-diff write them).
// node-tar folds pax headers into its entries but keeps only the fields it knows, and decodes the
// header body as UTF-8, which would mangle a binary value such as security.capability; so this
// reads the same bytes beside it. Pure: it is fed the uncompressed stream chunk by chunk, ahead of
// node-tar's parser, and numbers the entries the way that parser emits them, so the writer can
// ask for "the xattrs of the n-th entry".

const BLOCK = 512;
/** Pax headers larger than this are refused (node-tar ignores meta entries over 1 MiB). */
export const MAX_PAX_HEADER_BYTES = 1024 * 1024;
/** Linux's XATTR_NAME_MAX and XATTR_SIZE_MAX. */
export const MAX_XATTR_NAME_BYTES = 255;
export const MAX_XATTR_VALUE_BYTES = 64 * 1024;
/** Attributes one entry may carry. */
export const MAX_XATTRS_PER_ENTRY = 64;

const XATTR_KEY = 'SCHILY.xattr.';

/** Type flags node-tar emits as entries (others are meta entries or ignored by it). */
const ENTRY_FLAGS = new Set(['0', '\0', '1', '2', '3', '4', '5', '6', '7', 'D']);
/** Local pax headers ('x', Solaris 'X'); global ones ('g') are read beside them. */
const PAX_FLAGS = new Set(['x', 'X']);
const GNU_LONG_NAME_FLAGS = new Set(['L', 'K']);

export class TarXattrError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TarXattrError';
  }
}

/** Records of a pax header body ("LEN key=value\n" each; values are bytes). */
export function parsePaxRecords(body: Buffer): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  let at = 0;
  while (at < body.length) {
    if (body[at] === 0) break; // NUL padding after the last record
    const space = body.indexOf(0x20, at);
    if (space < 0 || space - at > 20) throw new TarXattrError(`pax header: record at byte ${at} has no length`);
    const lengthText = body.subarray(at, space).toString('latin1');
    if (!/^[0-9]+$/.test(lengthText)) throw new TarXattrError(`pax header: record at byte ${at} has length ${JSON.stringify(lengthText)}`);
    const length = Number(lengthText);
    const end = at + length;
    if (length <= space - at + 1 || end > body.length || body[end - 1] !== 0x0a)
      throw new TarXattrError(`pax header: record at byte ${at} is cut or not ended by a newline`);
    const equals = body.indexOf(0x3d, space + 1);
    if (equals < 0 || equals >= end) throw new TarXattrError(`pax header: record at byte ${at} has no "="`);
    records.set(body.subarray(space + 1, equals).toString('utf8'), body.subarray(equals + 1, end - 1));
    at = end;
  }
  return records;
}

/** The SCHILY.xattr records of a pax header, bounded; an error names what is wrong. */
export function xattrsOfPaxRecords(records: ReadonlyMap<string, Buffer>): Map<string, Buffer> {
  const xattrs = new Map<string, Buffer>();
  for (const [key, value] of records) {
    if (!key.startsWith(XATTR_KEY)) continue;
    const name = key.slice(XATTR_KEY.length);
    if (name === '' || Buffer.byteLength(name) > MAX_XATTR_NAME_BYTES || name.includes('\0'))
      throw new TarXattrError(`pax header: xattr name ${JSON.stringify(name.slice(0, 80))} is invalid`);
    if (value.length > MAX_XATTR_VALUE_BYTES) throw new TarXattrError(`pax header: xattr ${name} has ${value.length} bytes (at most ${MAX_XATTR_VALUE_BYTES})`);
    xattrs.set(name, Buffer.from(value));
    if (xattrs.size > MAX_XATTRS_PER_ENTRY) throw new TarXattrError(`pax header: more than ${MAX_XATTRS_PER_ENTRY} xattrs on one entry`);
  }
  return xattrs;
}

/** A tar numeric field: octal text, or GNU base-256 when the top bit of its first byte is set. */
export function tarNumber(field: Buffer): number {
  const first = field[0] ?? 0;
  if ((first & 0x80) !== 0) {
    if ((first & 0x40) !== 0) throw new TarXattrError('tar header: negative base-256 number');
    let value = first & 0x3f;
    for (const byte of field.subarray(1)) {
      value = value * 256 + byte;
      if (!Number.isSafeInteger(value)) throw new TarXattrError('tar header: number too large');
    }
    return value;
  }
  const text = field
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .replace(/^ +/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarXattrError(`tar header: number ${JSON.stringify(text)} is not octal`);
  return parseInt(text, 8);
}

/**
 * Follows a tar stream block by block: for each entry (numbered from 0 in the order node-tar emits
 * them) the xattrs its pax headers gave, local ones over global ones. Only entries that have some
 * are remembered, and each is taken once (`take`), so memory is bounded by what is not yet written.
 */
export class TarXattrScanner {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes of entry data (with padding) still to skip, or of a pax body still to collect. */
  private bodyLeft = 0;
  private collecting: { flag: string; size: number; parts: Buffer[] } | undefined;
  private local: Map<string, Buffer> | undefined;
  private localSize: number | undefined;
  private global = new Map<string, Buffer>();
  private nextEntry = 0;
  private ended = false;
  private readonly found = new Map<number, Map<string, Buffer>>();

  /** Feeds the next bytes of the uncompressed stream. */
  write(chunk: Buffer): void {
    if (this.ended) return;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    for (;;) {
      if (this.bodyLeft > 0) {
        if (this.pendingBytes === 0) return;
        const bytes = this.consume(Math.min(this.bodyLeft, this.pendingBytes));
        this.bodyLeft -= bytes.length;
        if (this.collecting !== undefined) {
          this.collecting.parts.push(bytes);
          if (this.bodyLeft === 0) this.finishPax();
        }
        continue;
      }
      if (this.pendingBytes < BLOCK) return;
      if (this.header(this.consume(BLOCK)) === 'end') {
        this.ended = true;
        return;
      }
    }
  }

  /** Entries whose headers were read so far. */
  get entriesSeen(): number {
    return this.nextEntry;
  }

  /** The xattrs of entry `index` (once; later calls answer undefined). */
  take(index: number): Map<string, Buffer> | undefined {
    const xattrs = this.found.get(index);
    this.found.delete(index);
    return xattrs;
  }

  private consume(bytes: number): Buffer {
    const all = this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending);
    const taken = all.subarray(0, bytes);
    const rest = all.subarray(bytes);
    this.pending = rest.length === 0 ? [] : [rest];
    this.pendingBytes = rest.length;
    return taken;
  }

  /** Reads one header block; 'end' at the zero block that ends the archive (nothing after it is read). */
  private header(block: Buffer): 'end' | 'more' {
    if (block.every((b) => b === 0)) return 'end';
    const flag = String.fromCharCode(block[156] ?? 0);
    const headerSize = tarNumber(block.subarray(124, 136));
    if (PAX_FLAGS.has(flag) || flag === 'g') {
      if (headerSize > MAX_PAX_HEADER_BYTES) throw new TarXattrError(`pax header of ${headerSize} bytes (at most ${MAX_PAX_HEADER_BYTES})`);
      this.collecting = { flag, size: headerSize, parts: [] };
      this.bodyLeft = roundUp(headerSize);
      if (this.bodyLeft === 0) this.finishPax();
      return 'more';
    }
    const size = this.localSize ?? headerSize;
    if (ENTRY_FLAGS.has(flag)) {
      const xattrs = new Map([...this.global, ...(this.local ?? [])]);
      if (xattrs.size > 0) this.found.set(this.nextEntry, xattrs);
      this.nextEntry += 1;
    }
    // GNU long names ('L', 'K') are meta entries: as in node-tar, a pax header before one still
    // applies to the entry after it (and its size to the long name's body too). Any other header,
    // an entry or a type node-tar ignores, uses the pax header up.
    if (!GNU_LONG_NAME_FLAGS.has(flag)) {
      this.local = undefined;
      this.localSize = undefined;
    }
    this.bodyLeft = roundUp(size);
    return 'more';
  }

  private finishPax(): void {
    const collecting = this.collecting;
    this.collecting = undefined;
    if (collecting === undefined) return;
    const body = Buffer.concat(collecting.parts).subarray(0, collecting.size);
    const records = parsePaxRecords(body);
    const xattrs = xattrsOfPaxRecords(records);
    if (collecting.flag === 'g') {
      this.global = new Map([...this.global, ...xattrs]);
      return;
    }
    this.local = xattrs;
    const size = records.get('size');
    if (size !== undefined) {
      const text = size.toString('latin1');
      if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new TarXattrError(`pax header: size ${JSON.stringify(text.slice(0, 40))}`);
      this.localSize = Number(text);
    }
  }
}

function roundUp(size: number): number {
  return Math.ceil(size / BLOCK) * BLOCK;
}

/** What unpacking does with one extended attribute of a layer entry. */
export type XattrDecision = { keep: true } | { keep: false; why: string };

/**
 * The allow-list of xattrs a layer may set on the node (see docs/ARCHITECTURE.md, "Layer xattrs"):
 * - security.capability: file capabilities (ping, servers binding low ports), as Docker and
 *   containerd restore them; a file capability never exceeds the container's bounding set. Root
 *   only (setting it needs CAP_SETFCAP).
 * - user.*: plain data in the user's namespace, except user.overlay.*, which overlayfs mounted
 *   with `userxattr` reads as its own metadata.
 * - never trusted.*: trusted.overlay.* is overlayfs's metadata (opaque, redirect, metacopy) and a
 *   layer must not forge it; only the whiteout conversion writes it.
 * - never security.selinux/apparmor/ima/evm/SMACK: labels and integrity come from the node's
 *   policy, not from an image; never system.* (ACLs name the building machine's ids).
 */
export function xattrDecision(name: string, asRoot: boolean): XattrDecision {
  if (name === 'security.capability') return asRoot ? { keep: true } : { keep: false, why: 'setting file capabilities needs root' };
  if (name.startsWith('user.overlay.')) return { keep: false, why: "overlayfs's own metadata" };
  if (name.startsWith('user.')) return { keep: true };
  if (name.startsWith('trusted.')) return { keep: false, why: "trusted.* is the kernel's and overlayfs's, never an image's" };
  if (name.startsWith('security.')) return { keep: false, why: "security labels come from the node's policy" };
  return { keep: false, why: 'not on the allow-list (security.capability, user.*)' };
}

const CAP_REVISION_MASK = 0xff00_0000;
const CAP_REVISION_2 = 0x0200_0000;
const CAP_REVISION_3 = 0x0300_0000;

/**
 * A layer's security.capability as the node stores it: revision 2 (20 bytes) as it is; revision 3
 * (24 bytes, with the root uid of the user namespace it was made in, meaningless on this node) as
 * revision 2, that is, for the container's root, which is what the image's author meant. Anything
 * else is refused.
 */
export function layerCapability(value: Buffer): Buffer {
  if (value.length !== 20 && value.length !== 24)
    throw new TarXattrError(`security.capability of ${value.length} bytes (revision 2 has 20, revision 3 has 24)`);
  const magic = value.readUInt32LE(0);
  const revision = (magic & CAP_REVISION_MASK) >>> 0;
  if (value.length === 20 && revision === CAP_REVISION_2) return value;
  if (value.length === 24 && revision === CAP_REVISION_3) {
    const out = Buffer.from(value.subarray(0, 20));
    out.writeUInt32LE((CAP_REVISION_2 | (magic & 0x00ff_ffff)) >>> 0, 0);
    return out;
  }
  throw new TarXattrError(`security.capability revision 0x${revision.toString(16)} with ${value.length} bytes is not one the kernel takes`);
}
