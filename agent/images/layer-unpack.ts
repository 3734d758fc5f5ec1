// Unpacks one image layer (tar, optionally gzip or zstd) into a directory that overlayfs can use as a
// lowerdir. The layer is untrusted input: paths may not leave the directory, nothing is written
// through a symlink, device nodes are skipped (the runtime provides /dev), and OCI whiteouts
// become overlayfs whiteouts. Extended attributes (pax SCHILY.xattr records) are set from an
// allow-list only (tar-xattrs.ts: security.capability, user.*).
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, link, lstat, lutimes, mkdir, open, readlink, rm, symlink, chmod, lchown } from 'node:fs/promises';
import { join } from 'node:path';
import { Parser, type ReadEntry } from 'tar';
import { lsetxattr, mknod } from '../runtime/native.js';
import { readDecompressed } from './decompress.js';
import { TarXattrScanner, layerCapability, xattrDecision } from './tar-xattrs.js';
import { unlessAbsent } from '../fs-errors.js';

export interface UnpackResult {
  /** sha256 of the uncompressed tar stream: the layer's diff-id. */
  diffId: string;
  /** Things that were deliberately not unpacked, for logs. */
  notes: string[];
}

export class UnsafeLayerError extends Error {
  constructor(what: string, reason: string) {
    super(`${what}: refused: ${reason}`);
    this.name = 'UnsafeLayerError';
  }
}

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';
export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';

/**
 * Splits a tar entry path into components relative to the layer root, refusing absolute paths
 * and "..": a layer may only describe files inside itself.
 */
export function layerPathComponents(raw: string, what: string): string[] {
  if (raw.startsWith('/')) throw new UnsafeLayerError(what, `absolute path ${JSON.stringify(raw)}`);
  if (raw.includes('\0')) throw new UnsafeLayerError(what, `path with a NUL byte ${JSON.stringify(raw)}`);
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new UnsafeLayerError(what, `path ${JSON.stringify(raw)} contains ".."`);
  return parts;
}

/** Unpacks `blobPath` into `targetDir`, which must exist and be empty. */
export async function unpackLayer(blobPath: string, targetDir: string, what: string): Promise<UnpackResult> {
  const source = readDecompressed(blobPath, what);

  const writer = new LayerWriter(targetDir, what);
  const xattrs = new TarXattrScanner();
  let entryIndex = 0;
  const hash = createHash('sha256');
  let failure: Error | undefined;
  let sawData = false;
  const parser = new Parser({
    onwarn: (code: string, message: string | Error) => {
      const text = message instanceof Error ? message.message : message;
      // A layer of only zero blocks (Docker's "empty layer") is valid but not "recognised" by tar.
      if (code === 'TAR_BAD_ARCHIVE' && text === 'Unrecognized archive format' && !sawData) return;
      failure ??= new Error(`${what}: invalid tar: ${text}`);
    },
  });
  // Entries are handled strictly one after another; the parser holds back file data until the
  // handler of that file reads it, so memory stays bounded.
  let chain: Promise<void> = Promise.resolve();
  parser.on('entry', (entry: ReadEntry) => {
    // Entries are emitted in archive order, after the scanner (fed first) has read their headers.
    const entryXattrs = xattrs.take(entryIndex++);
    chain = chain.then(async () => {
      try {
        if (failure === undefined) await writer.write(entry, entryXattrs);
      } catch (error) {
        failure ??= error instanceof Error ? error : new Error(String(error));
      } finally {
        entry.resume();
      }
    });
  });
  const parserDone = new Promise<void>((resolve) => {
    parser.on('end', () => resolve());
    parser.on('close', () => resolve());
  });

  try {
    for await (const chunk of source) {
      if (failure !== undefined) break;
      hash.update(chunk);
      xattrs.write(chunk);
      if (!sawData && chunk.some((b) => b !== 0)) sawData = true;
      if (!parser.write(chunk)) await new Promise<void>((resolve) => parser.once('drain', resolve));
    }
  } catch (error) {
    // Decompression errors already name the layer; say it once.
    const message = (error as Error).message.replace(`${what}: `, '');
    failure ??= new Error(`${what}: cannot read layer: ${message}`);
  } finally {
    await source.return(undefined);
  }
  // Ending the parser also ends a half-read entry, so a handler waiting for its data returns.
  parser.end();
  await parserDone;
  await chain;
  if (failure !== undefined) throw failure;
  await writer.finish();
  return { diffId: `sha256:${hash.digest('hex')}`, notes: writer.notes };
}

/** Writes tar entries below one root, keeping track of which directories are known to be real. */
class LayerWriter {
  readonly notes: string[] = [];
  /** Relative paths checked to be real directories (not symlinks) below the root. */
  private readonly knownDirs = new Set<string>();
  private readonly dirTimes: { path: string; atime: Date; mtime: Date }[] = [];
  private readonly setOwners = process.getuid?.() === 0;
  private readonly notedXattrs = new Set<string>();

  constructor(
    private readonly root: string,
    private readonly what: string,
  ) {}

  async write(entry: ReadEntry, xattrs?: ReadonlyMap<string, Buffer>): Promise<void> {
    if (entry.meta || entry.ignore) return;
    const entryWhat = `${this.what}: entry ${JSON.stringify(entry.path)}`;
    const parts = layerPathComponents(entry.path, this.what);
    if (parts.length === 0) return; // the layer root itself ("./")
    const name = parts[parts.length - 1] as string;
    const parentParts = parts.slice(0, -1);
    await this.ensureDirectoryChain(parentParts, entryWhat, true);

    if (name.startsWith(WHITEOUT_PREFIX)) {
      await this.writeWhiteout(name, parentParts, entryWhat);
      return;
    }

    const rel = parts.join('/');
    const full = join(this.root, ...parts);
    const mode = (entry.mode ?? 0o644) & 0o7777;
    const uid = entry.uid ?? 0;
    const gid = entry.gid ?? 0;
    const mtime = entry.mtime ?? new Date(0);
    const atime = entry.atime ?? mtime;

    switch (entry.type) {
      case 'File':
      case 'OldFile':
      case 'ContiguousFile': {
        await this.clear(rel, full, false);
        // O_NOFOLLOW|O_EXCL: never open through something that appeared at this path.
        const file = await open(full, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
        try {
          await writeAll(file, entry);
          if (this.setOwners) await file.chown(uid, gid);
          await file.chmod(mode); // after chown, which clears set-id bits
          await file.utimes(atime, mtime);
        } finally {
          await file.close();
        }
        // After chown, which clears security.capability; setting an xattr leaves mtime alone.
        this.setXattrs(full, rel, xattrs, entryWhat);
        return;
      }
      case 'Directory': {
        const existed = await this.clear(rel, full, true);
        if (!existed) await mkdir(full, 0o700);
        this.knownDirs.add(rel);
        if (this.setOwners) await lchown(full, uid, gid);
        await chmod(full, mode);
        this.setXattrs(full, rel, xattrs, entryWhat);
        this.dirTimes.push({ path: full, atime, mtime });
        return;
      }
      case 'SymbolicLink': {
        if (!entry.linkpath) throw new UnsafeLayerError(entryWhat, 'symlink without a target');
        await this.clear(rel, full, false);
        // The target is stored as given: it is resolved inside the container's root at run time.
        await symlink(entry.linkpath, full);
        this.skipXattrs(rel, xattrs, 'a symlink carries none on Linux');
        if (this.setOwners) await lchown(full, uid, gid);
        await lutimes(full, atime, mtime);
        return;
      }
      case 'Link': {
        const targetParts = layerPathComponents(entry.linkpath ?? '', entryWhat);
        if (targetParts.length === 0) throw new UnsafeLayerError(entryWhat, 'hard link without a target');
        await this.ensureDirectoryChain(targetParts.slice(0, -1), entryWhat, false);
        const targetFull = join(this.root, ...targetParts);
        const target = await unlessAbsent(lstat(targetFull), undefined);
        if (!target) throw new Error(`${entryWhat}: hard link target ${JSON.stringify(entry.linkpath)} is not in this layer`);
        if (target.isDirectory()) throw new UnsafeLayerError(entryWhat, 'hard link to a directory');
        await this.clear(rel, full, false);
        await link(targetFull, full);
        // The attributes are the inode's, set by its first name's entry.
        this.skipXattrs(rel, xattrs, 'a hard link shares its target’s');
        return;
      }
      case 'FIFO': {
        await this.clear(rel, full, false);
        mknod(full, constants.S_IFIFO | mode, 0, 0);
        this.skipXattrs(rel, xattrs, 'user.* cannot be set on a fifo');
        if (this.setOwners) await lchown(full, uid, gid);
        await lutimes(full, atime, mtime);
        return;
      }
      case 'CharacterDevice':
      case 'BlockDevice':
        this.notes.push(`skipped ${entry.type === 'CharacterDevice' ? 'character' : 'block'} device ${rel}: the runtime provides /dev`);
        return;
      // Every other type tar knows (node-tar maps unknown ones to 'Unsupported') is refused by name.
      case 'ContinuationFile':
      case 'ExtendedHeader':
      case 'GlobalExtendedHeader':
      case 'GNUDumpDir':
      case 'Inode':
      case 'NextFileHasLongLinkpath':
      case 'NextFileHasLongPath':
      case 'OldExtendedHeader':
      case 'OldGnuLongPath':
      case 'SolarisACL':
      case 'SparseFile':
      case 'TapeVolumeHeader':
      case 'Unsupported':
        throw new Error(`${entryWhat}: unsupported tar entry type ${entry.type}`);
    }
  }

  /** Sets the allowed attributes of `xattrs` on the entry just written; the others are noted once per name. */
  private setXattrs(full: string, rel: string, xattrs: ReadonlyMap<string, Buffer> | undefined, entryWhat: string): void {
    for (const [name, value] of xattrs ?? []) {
      const decision = xattrDecision(name, this.setOwners);
      if (!decision.keep) {
        this.noteXattr(name, `skipped xattr ${name} (${decision.why}), first on ${rel}`);
        continue;
      }
      let stored: Buffer;
      try {
        stored = name === 'security.capability' ? layerCapability(value) : value;
      } catch (error) {
        throw new UnsafeLayerError(entryWhat, (error as Error).message);
      }
      try {
        lsetxattr(full, name, stored);
      } catch (error) {
        // A file system without user xattrs (tmpfs before Linux 6.6) cannot hold them: noted, not fatal.
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'EOPNOTSUPP' && code !== 'ENOTSUP') {
          throw new Error(`${entryWhat}: setting xattr ${name}: ${(error as Error).message}`);
        }
        this.noteXattr(name, `skipped xattr ${name} (the file system does not support it), first on ${rel}`);
      }
    }
  }

  private skipXattrs(rel: string, xattrs: ReadonlyMap<string, Buffer> | undefined, why: string): void {
    for (const name of xattrs?.keys() ?? []) this.noteXattr(name, `skipped xattr ${name} on ${rel}: ${why}`);
  }

  /** One note per attribute name, so a layer of many files does not flood the log. */
  private noteXattr(name: string, note: string): void {
    if (this.notedXattrs.has(name)) return;
    this.notedXattrs.add(name);
    this.notes.push(note);
  }

  /** Applies directory times last: creating entries inside a directory changes its mtime. */
  async finish(): Promise<void> {
    for (const { path, atime, mtime } of this.dirTimes.reverse()) await lutimes(path, atime, mtime);
  }

  private async writeWhiteout(name: string, parentParts: string[], entryWhat: string): Promise<void> {
    const parentFull = join(this.root, ...parentParts);
    if (name === OPAQUE_MARKER) {
      // overlayfs hides everything below this directory in lower layers.
      lsetxattr(parentFull, OVERLAY_OPAQUE_XATTR, Buffer.from('y'));
      return;
    }
    if (name.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) {
      this.notes.push(`skipped AUFS metadata ${[...parentParts, name].join('/')}`);
      return;
    }
    const victim = name.slice(WHITEOUT_PREFIX.length);
    if (victim === '' || victim === '.' || victim === '..') throw new UnsafeLayerError(entryWhat, 'whiteout without a valid name');
    const parts = [...parentParts, victim];
    const full = join(this.root, ...parts);
    await this.clear(parts.join('/'), full, false);
    // overlayfs's whiteout: a character device with device number 0/0.
    mknod(full, constants.S_IFCHR, 0, 0);
  }

  /**
   * Makes sure every component of `parts` is a real directory inside the root, creating missing
   * ones when `create`; a symlink anywhere in the chain is refused, since writing through it could
   * land outside the layer (and a layer made from a filesystem never needs to).
   */
  private async ensureDirectoryChain(parts: string[], entryWhat: string, create: boolean): Promise<void> {
    for (let i = 1; i <= parts.length; i++) {
      const rel = parts.slice(0, i).join('/');
      if (this.knownDirs.has(rel)) continue;
      const full = join(this.root, ...parts.slice(0, i));
      const info = await lstat(full).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return undefined;
        throw error;
      });
      if (info === undefined) {
        if (!create) throw new Error(`${entryWhat}: ${rel} does not exist in this layer`);
        await mkdir(full, 0o755);
      } else if (info.isSymbolicLink()) {
        const target = await readlink(full);
        throw new UnsafeLayerError(entryWhat, `would write through symlink ${rel} -> ${target}`);
      } else if (!info.isDirectory()) {
        throw new Error(`${entryWhat}: ${rel} is not a directory`);
      }
      this.knownDirs.add(rel);
    }
  }

  /** Removes whatever is at `full` so an entry can take its place; returns true if a directory is kept. */
  private async clear(rel: string, full: string, keepDirectory: boolean): Promise<boolean> {
    const info = await lstat(full).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (info === undefined) return false;
    if (keepDirectory && info.isDirectory()) return true;
    await rm(full, { recursive: true, force: true });
    for (const known of this.knownDirs) {
      if (known === rel || known.startsWith(`${rel}/`)) this.knownDirs.delete(known);
    }
    return false;
  }
}

async function writeAll(file: FileHandle, entry: ReadEntry): Promise<void> {
  for await (const chunk of entry as AsyncIterable<Buffer>) {
    let offset = 0;
    while (offset < chunk.length) {
      const { bytesWritten } = await file.write(chunk, offset, chunk.length - offset);
      offset += bytesWritten;
    }
  }
}
