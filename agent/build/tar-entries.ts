// Pure tar encoding of one layer entry: header blocks (with a pax header when a field does not fit
// in ustar, or when the entry carries xattrs) and the padding after file data. node-tar's Header
// encodes the ustar blocks; its Pax cannot carry SCHILY.xattr records (security.capability), so
// the pax body is assembled here — the record format is one line per key.
import { Header } from 'tar';

export const BLOCK = 512;
/** Two zero blocks end a tar archive. */
export const END_OF_ARCHIVE = Buffer.alloc(BLOCK * 2);

export type LayerEntryType = 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'CharacterDevice' | 'BlockDevice' | 'FIFO';

export interface LayerEntryHeader {
  /** Relative path inside the layer; directories end with "/". */
  path: string;
  type: LayerEntryType;
  /** Permission and set-id bits (07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of data that follow (files only). */
  size: number;
  mtime: Date;
  /** Symlink target, or the earlier path of a hard link. */
  linkpath?: string;
  devmajor?: number;
  devminor?: number;
  /** Extended attributes to keep (name → raw value), written as SCHILY.xattr records. */
  xattrs?: ReadonlyMap<string, Buffer>;
}

/** The blocks that come before an entry's data. */
export function encodeEntryHeader(entry: LayerEntryHeader): Buffer {
  const header = new Header({
    path: entry.path,
    type: entry.type,
    mode: entry.mode & 0o7777,
    uid: entry.uid,
    gid: entry.gid,
    size: entry.type === 'File' ? entry.size : 0,
    mtime: wholeSeconds(entry.mtime),
    uname: '',
    gname: '',
    ...(entry.linkpath === undefined ? {} : { linkpath: entry.linkpath }),
    devmaj: entry.devmajor ?? 0,
    devmin: entry.devminor ?? 0,
  });
  const block = Buffer.alloc(BLOCK);
  const needPax = header.encode(block, 0);
  const xattrs = entry.xattrs ?? new Map<string, Buffer>();
  if (!needPax && xattrs.size === 0) return block;
  return Buffer.concat([paxHeader(entry, xattrs), block]);
}

/** Zero bytes that pad `size` bytes of data to a whole block. */
export function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return rest === 0 ? Buffer.alloc(0) : Buffer.alloc(BLOCK - rest);
}

/** A pax extended header ('x') carrying every field of `entry` that may not fit, plus its xattrs. */
function paxHeader(entry: LayerEntryHeader, xattrs: ReadonlyMap<string, Buffer>): Buffer {
  const records: Buffer[] = [
    paxRecord('path', Buffer.from(entry.path)),
    ...(entry.linkpath === undefined ? [] : [paxRecord('linkpath', Buffer.from(entry.linkpath))]),
    paxRecord('uid', Buffer.from(String(entry.uid))),
    paxRecord('gid', Buffer.from(String(entry.gid))),
    ...(entry.type === 'File' ? [paxRecord('size', Buffer.from(String(entry.size)))] : []),
    paxRecord('mtime', Buffer.from(String(Math.floor(entry.mtime.getTime() / 1000)))),
    // Sorted so the same attributes always give the same bytes.
    ...[...xattrs.keys()].sort().map((name) => paxRecord(`SCHILY.xattr.${name}`, xattrs.get(name) as Buffer)),
  ];
  const body = Buffer.concat(records);
  const base = entry.path.replace(/\/$/, '').split('/').pop() ?? '';
  const header = new Header({ path: `PaxHeader/${base}`.slice(0, 99), type: 'ExtendedHeader', mode: 0o644, size: body.length, mtime: wholeSeconds(entry.mtime) });
  const block = Buffer.alloc(BLOCK);
  header.encode(block, 0);
  return Buffer.concat([block, body, padding(body.length)]);
}

/** One "LEN key=value\n" record; LEN counts its own digits too. */
export function paxRecord(key: string, value: Buffer): Buffer {
  const rest = Buffer.byteLength(` ${key}=`) + value.length + 1;
  const digits = String(rest).length;
  const length = String(rest + digits).length > digits ? rest + digits + 1 : rest + digits;
  return Buffer.concat([Buffer.from(`${length} ${key}=`), value, Buffer.from('\n')]);
}

function wholeSeconds(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}
