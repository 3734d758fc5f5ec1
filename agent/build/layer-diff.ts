// A step's layer: the overlay upper directory of its container (everything the step wrote) as an
// OCI layer tar. overlayfs already keeps exactly the difference there, so no comparison with the
// lower layers is needed; only its private forms become the OCI ones: a whiteout (a 0:0 character
// device) becomes an empty `.wh.NAME` file, an opaque directory (trusted.overlay.opaque=y) gets a
// `.wh..wh..opq` entry. Entries are sorted by name, parents first, so the same tree always gives
// the same bytes; hard links are kept (the second name is a link entry to the first), and so are
// file capabilities and user.* xattrs (as pax SCHILY.xattr records).
import type { BigIntStats } from 'node:fs';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { lgetxattr, llistxattr } from '../runtime/native.js';
import { END_OF_ARCHIVE, encodeEntryHeader, padding, type LayerEntryHeader } from './tar-entries.js';

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_WHITEOUT = '.wh..wh..opq';
export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';
/** Set on a directory renamed with redirect_dir on: the upper dir would no longer be a plain diff. */
const OVERLAY_REDIRECT_XATTR = 'trusted.overlay.redirect';
/**
 * Whether a layer carries an extended attribute: file capabilities and user.* ones, the same
 * allow-list unpacking sets (agent/images/tar-xattrs.ts); overlay's own (trusted.overlay.*, and
 * user.overlay.* of a `userxattr` mount), security labels and ACLs never leave the node.
 */
export function keptXattr(name: string): boolean {
  return name === 'security.capability' || (name.startsWith('user.') && !name.startsWith('user.overlay.'));
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;

/** What one entry of an overlay upper directory stands for in a layer. */
export type UpperEntryKind = 'whiteout' | 'file' | 'directory' | 'symlink' | 'char-device' | 'block-device' | 'fifo' | 'socket';

/** Pure: the kind of an upper-directory entry from its mode and device number. */
export function classifyUpperEntry(mode: number, major: number, minor: number): UpperEntryKind {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return 'file';
    case S_IFDIR:
      return 'directory';
    case S_IFLNK:
      return 'symlink';
    case S_IFCHR:
      return major === 0 && minor === 0 ? 'whiteout' : 'char-device';
    case S_IFBLK:
      return 'block-device';
    case S_IFIFO:
      return 'fifo';
    default:
      return 'socket';
  }
}

/** Pure: the layer path of the whiteout that deletes `relPath` ("a/b" → "a/.wh.b"). */
export function whiteoutPath(relPath: string): string {
  const slash = relPath.lastIndexOf('/');
  return slash < 0 ? `${WHITEOUT_PREFIX}${relPath}` : `${relPath.slice(0, slash + 1)}${WHITEOUT_PREFIX}${relPath.slice(slash + 1)}`;
}

/** Pure: the marker entry that makes directory `relDir` opaque ("a/b" → "a/b/.wh..wh..opq"). */
export function opaqueMarkerPath(relDir: string): string {
  return `${relDir}/${OPAQUE_WHITEOUT}`;
}

/** Linux's major and minor from st_rdev (glibc's gnu_dev_major/minor). */
export function deviceNumbers(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

export interface LayerDiffOptions {
  /**
   * Directories the runtime made as mount points (/proc, /dev, /sys when the image had none):
   * left out when still empty, since the step did not make them.
   */
  mountPoints?: ReadonlySet<string>;
  /** Names the layer in errors. */
  what: string;
}

/** The upper directory `upper` as an uncompressed tar stream. */
export async function* layerTar(upper: string, options: LayerDiffOptions): AsyncGenerator<Buffer> {
  const links = new Map<string, string>();
  yield* walk(upper, '', links, options);
  yield END_OF_ARCHIVE;
}

async function* walk(upper: string, relDir: string, links: Map<string, string>, options: LayerDiffOptions): AsyncGenerator<Buffer> {
  // Sorted as byte strings (not by locale), so the order never depends on the machine.
  const names = (await readdir(join(upper, relDir))).sort(compareBytes);
  for (const name of names) {
    const rel = relDir === '' ? name : `${relDir}/${name}`;
    const full = join(upper, rel);
    const info = await lstat(full, { bigint: true });
    const { major, minor } = deviceNumbers(info.rdev);
    const kind = classifyUpperEntry(Number(info.mode), major, minor);
    const base = { mode: Number(info.mode) & 0o7777, uid: Number(info.uid), gid: Number(info.gid), size: 0, mtime: info.mtime };
    switch (kind) {
      case 'whiteout':
        yield encodeEntryHeader({ ...base, path: whiteoutPath(rel), type: 'File', mode: 0, uid: 0, gid: 0 });
        break;
      case 'directory': {
        if (options.mountPoints?.has(rel) === true && (await readdir(full)).length === 0) break;
        if (lgetxattr(full, OVERLAY_REDIRECT_XATTR) !== undefined) {
          throw new Error(`${options.what}: directory ${rel} was renamed with overlayfs redirect_dir on, which a layer cannot describe`);
        }
        yield encodeEntryHeader({ ...base, path: `${rel}/`, type: 'Directory', xattrs: keptXattrs(full) });
        if (lgetxattr(full, OVERLAY_OPAQUE_XATTR)?.toString() === 'y') {
          yield encodeEntryHeader({ ...base, path: opaqueMarkerPath(rel), type: 'File', mode: 0, uid: 0, gid: 0 });
        }
        yield* walk(upper, rel, links, options);
        break;
      }
      case 'file': {
        const first = hardLinkOf(info, rel, links);
        if (first !== undefined) {
          yield encodeEntryHeader({ ...base, path: rel, type: 'Link', linkpath: first });
          break;
        }
        const size = Number(info.size);
        yield encodeEntryHeader({ ...base, path: rel, type: 'File', size, xattrs: keptXattrs(full) });
        yield* fileData(full, size, `${options.what}: ${rel}`);
        yield padding(size);
        break;
      }
      case 'symlink':
        yield encodeEntryHeader({ ...base, path: rel, type: 'SymbolicLink', linkpath: await readlink(full) });
        break;
      case 'char-device':
      case 'block-device':
        yield encodeEntryHeader({ ...base, path: rel, type: kind === 'char-device' ? 'CharacterDevice' : 'BlockDevice', devmajor: major, devminor: minor });
        break;
      case 'fifo':
        yield encodeEntryHeader({ ...base, path: rel, type: 'FIFO' });
        break;
      case 'socket':
        // A socket is a live endpoint of a process that is gone; tar (and every layer tool) skips them.
        break;
    }
  }
}

/** The first path of a file with more than one name in this layer, when `rel` is not that first one. */
function hardLinkOf(info: BigIntStats, rel: string, links: Map<string, string>): string | undefined {
  if (info.nlink < 2n) return undefined;
  const key = `${info.dev}:${info.ino}`;
  const first = links.get(key);
  if (first === undefined) links.set(key, rel);
  return first;
}

function keptXattrs(full: string): Map<string, Buffer> | undefined {
  let found: Map<string, Buffer> | undefined;
  for (const name of llistxattr(full).filter(keptXattr)) {
    const value = lgetxattr(full, name);
    if (value !== undefined) (found ??= new Map()).set(name, value);
  }
  return found;
}

/** Exactly `size` bytes of the file: one that changed size since lstat would corrupt the archive. */
async function* fileData(full: string, size: number, what: string): AsyncGenerator<Buffer> {
  let read = 0;
  for await (const chunk of createReadStream(full, { highWaterMark: 256 * 1024 }) as AsyncIterable<Buffer>) {
    read += chunk.length;
    if (read > size) throw new Error(`${what} grew while it was archived`);
    yield chunk;
  }
  if (read !== size) throw new Error(`${what} shrank while it was archived`);
}

function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

export type { LayerEntryHeader };
