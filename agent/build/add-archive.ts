// ADD's local tar auto-extraction: a source file that is a tar archive (plain, gzip, bzip2 or xz)
// is unpacked into the destination instead of copied. node-tar unpacks it into a scratch directory
// first (it refuses absolute paths and "..", and never writes through a symlink it made), and the
// executor copies from there with COPY's own rules; bzip2 and xz go through Debian's bzip2 and xz
// tools, since Node has no decoder for either. node-tar drops pax xattr records, so the allowed ones
// (security.capability, user.*: agent/images/tar-xattrs.ts) are read beside it and set afterwards.
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { chmod, lstat, mkdir, open } from 'node:fs/promises';
import { readDecompressed } from '../images/decompress.js';
import { TarXattrError, TarXattrScanner, layerCapability, xattrDecision } from '../images/tar-xattrs.js';
import { lsetxattr } from '../runtime/native.js';
import { join } from 'node:path';
import { pathComponents, resolveInRoot } from './in-root.js';
import { unlessAbsent } from '../fs-errors.js';
import { pipeline } from 'node:stream/promises';
import { extract } from 'tar';
import { BuildError } from '../../common/build/builder.js';

export type ArchiveKind = 'tar' | 'gzip' | 'bzip2' | 'xz';

/** Pure: the archive kind from a file's first 262 bytes, or undefined when it is not one ADD unpacks. */
export function archiveKindOf(head: Buffer): ArchiveKind | undefined {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') return 'tar';
  return undefined;
}

export async function detectArchive(path: string): Promise<ArchiveKind | undefined> {
  const file = await open(path, 'r');
  try {
    const head = Buffer.alloc(262);
    const { bytesRead } = await file.read(head, 0, head.length, 0);
    const kind = archiveKindOf(head.subarray(0, bytesRead));
    // gzip wraps anything; only a tar inside is unpacked (Docker copies other files as they are).
    if (kind === 'gzip') return archiveKindOf(await gunzippedHead(path, head.length)) === 'tar' ? 'gzip' : undefined;
    return kind;
  } finally {
    await file.close();
  }
}

/** Unpacks `archive` into the empty directory `target`, keeping owners and modes. */
export async function unpackArchive(archive: string, kind: ArchiveKind, target: string, scratch: string, what: string): Promise<void> {
  await mkdir(target, { recursive: true });
  let tarFile = archive;
  if (kind === 'bzip2' || kind === 'xz') {
    tarFile = `${scratch}.tar`;
    await decompressWith(kind === 'bzip2' ? 'bzip2' : 'xz', archive, tarFile, what);
  }
  const warnings: string[] = [];
  const modes = new Map<string, number>();
  const xattrsByEntry = await archiveXattrs(tarFile, what);
  const xattrsByPath = new Map<string, ReadonlyMap<string, Buffer>>();
  let entryIndex = 0;
  try {
    await extract({
      file: tarFile,
      cwd: target,
      preserveOwner: true,
      strict: true,
      onReadEntry: (entry) => {
        const xattrs = xattrsByEntry.get(entryIndex++);
        if ((entry.type === 'File' || entry.type === 'Directory') && entry.mode !== undefined) modes.set(entry.path, entry.mode & 0o7777);
        if (xattrs !== undefined && (entry.type === 'File' || entry.type === 'Directory')) xattrsByPath.set(entry.path, xattrs);
      },
      onwarn: (_code: string, message: string | Error) => warnings.push(message instanceof Error ? message.message : message),
    });
  } catch (error) {
    throw new BuildError(`${what}: cannot unpack the archive: ${(error as Error).message}`);
  }
  if (warnings.length > 0) throw new BuildError(`${what}: cannot unpack the archive: ${warnings[0] ?? ''}`);
  await restoreModes(target, modes);
  await restoreXattrs(target, xattrsByPath, what);
}

/** The pax xattrs of each entry of the (uncompressed or gzip) tar, by entry number as node-tar emits them. */
async function archiveXattrs(tarFile: string, what: string): Promise<Map<number, Map<string, Buffer>>> {
  const scanner = new TarXattrScanner();
  const found = new Map<number, Map<string, Buffer>>();
  try {
    for await (const chunk of readDecompressed(tarFile, what)) scanner.write(chunk);
  } catch (error) {
    if (error instanceof TarXattrError) throw new BuildError(`${what}: cannot unpack the archive: ${error.message}`);
    throw error;
  }
  for (let index = 0; index < scanner.entriesSeen; index++) {
    const xattrs = scanner.take(index);
    if (xattrs !== undefined) found.set(index, xattrs);
  }
  return found;
}

/** Sets the allowed xattrs on the unpacked files and directories (after chown, which clears a capability). */
async function restoreXattrs(target: string, xattrsByPath: ReadonlyMap<string, ReadonlyMap<string, Buffer>>, what: string): Promise<void> {
  const asRoot = process.getuid?.() === 0;
  for (const [path, xattrs] of xattrsByPath) {
    const parts = pathComponents(path);
    if (parts.length === 0 || parts.includes('..')) continue;
    const full = join(target, ...parts);
    const info = await unlessAbsent(lstat(full), undefined);
    if (info === undefined || info.isSymbolicLink()) continue;
    if ((await resolveInRoot(target, parts.join('/'), false)) !== full) continue;
    for (const [name, value] of xattrs) {
      if (!xattrDecision(name, asRoot).keep) continue;
      try {
        lsetxattr(full, name, name === 'security.capability' ? layerCapability(value) : value);
      } catch (error) {
        throw new BuildError(`${what}: ${path}: xattr ${name}: ${(error as Error).message}`);
      }
    }
  }
}

/**
 * node-tar creates files through tsd's umask and does not chmod new files; Docker keeps the
 * archive's modes exactly (group-writable ones too), so they are set again here, after the owners
 * (a chown clears set-id bits). Only real files and directories inside `target` are touched.
 */
async function restoreModes(target: string, modes: ReadonlyMap<string, number>): Promise<void> {
  for (const [path, mode] of modes) {
    const parts = pathComponents(path);
    if (parts.length === 0 || parts.includes('..')) continue;
    const full = join(target, ...parts);
    const info = await unlessAbsent(lstat(full), undefined);
    if (info === undefined || info.isSymbolicLink()) continue; // skipped or replaced by a later entry
    // A later entry may have replaced a component with a symlink; resolving in the target keeps the chmod inside it.
    const inside = await resolveInRoot(target, parts.join('/'), false);
    if (inside === full) await chmod(full, mode);
  }
}

/** The first `length` bytes of a gzip file's content (fewer when it is shorter or broken). */
async function gunzippedHead(path: string, length: number): Promise<Buffer> {
  const gunzip = createReadStream(path).pipe(createGunzip());
  const chunks: Buffer[] = [];
  let got = 0;
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      got += chunk.length;
      if (got >= length) break;
    }
  } catch {
    // Not valid gzip after all: then it is not an archive ADD unpacks, and is copied as it is.
  } finally {
    gunzip.destroy();
  }
  return Buffer.concat(chunks).subarray(0, length);
}

async function decompressWith(tool: 'bzip2' | 'xz', source: string, target: string, what: string): Promise<void> {
  const child = spawn(tool, ['-dc', '--', source], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    if (stderr.length < 4096) stderr += chunk;
  });
  // Listened for from the start: 'close' may come before the copy below has finished.
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', (error) => reject(new BuildError(`${what}: ${tool} is needed to unpack this archive: ${error.message}`)));
    child.once('close', (code) => resolve(code));
  });
  const copied = pipeline(child.stdout, createWriteStream(target, { flags: 'wx', mode: 0o600 }));
  const [code] = await Promise.all([exited, copied]);
  if (code !== 0) throw new BuildError(`${what}: ${tool} could not decompress it: ${stderr.trim() || `exit ${String(code)}`}`);
}
