// Unpacks a build context (issue 18) that a client streams as a tar into a fresh directory on the
// manager. The stream is untrusted: the size cap is counted on the bytes as they arrive (nothing
// past the cap reaches the disk), every path stays inside the directory, nothing is written
// through a symlink, links may not point outside the directory (checked once all are there, since
// a chain of links can escape where each alone does not), and device nodes, FIFOs and other
// special files are refused by name: a context is files, directories and links.
import { constants } from 'node:fs';
import { chmod, link, lstat, mkdir, open, readlink, symlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { Parser, type ReadEntry } from 'tar';

import { BUILD_LIMITS, contextPathParts } from '../../common/build/request-limits.js';
import { quoteName } from '../../common/resources/limits.js';

export interface ContextLimits {
  /** Tar bytes, counted as they arrive. */
  maxBytes: number;
  maxEntries: number;
}

export interface UnpackedContext {
  /** Tar bytes received. */
  bytes: number;
  /** Entries written (files, directories, links). */
  entries: number;
}

/** The context is refused: the client sent something a context may not hold, or too much. */
export class ContextRefusedError extends Error {
  constructor(message: string) {
    super(`build context: ${message}`);
    this.name = 'ContextRefusedError';
  }
}

/** Symlinks followed at most this many times when checking where a link leads (the kernel's limit). */
const MAX_LINK_HOPS = 40;

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function errnoOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

async function lstatOrUndefined(path: string) {
  try {
    return await lstat(path);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Unpacks the tar that `chunks` carry into `dir` (which exists and is empty). Rejects with a
 * ContextRefusedError naming the entry and the rule; the caller removes `dir` either way.
 */
export async function unpackContext(chunks: AsyncIterable<Buffer>, dir: string, limits: ContextLimits, signal?: AbortSignal): Promise<UnpackedContext> {
  const writer = new ContextWriter(dir, limits);
  let failure: Error | undefined;
  const fail = (err: unknown) => {
    failure ??= err instanceof Error ? err : new Error(String(err));
  };
  let sawData = false;
  const parser = new Parser({
    onwarn: (code: string, message: string | Error) => {
      const text = message instanceof Error ? message.message : message;
      // A context with nothing in it is a tar of zero blocks only, which tar does not "recognise".
      if (code === 'TAR_BAD_ARCHIVE' && !sawData) return;
      fail(new ContextRefusedError(`not a valid tar: ${text}`));
    },
  });
  parser.on('error', (err: Error) => fail(new ContextRefusedError(`not a valid tar: ${err.message}`)));
  // One entry at a time: the parser holds back a file's data until its handler reads it.
  let chain: Promise<void> = Promise.resolve();
  parser.on('entry', (entry: ReadEntry) => {
    chain = chain.then(async () => {
      try {
        if (failure === undefined) await writer.write(entry);
      } catch (err) {
        fail(err);
      } finally {
        entry.resume();
      }
    });
  });
  const parserDone = new Promise<void>((resolve) => {
    parser.on('end', () => resolve());
    parser.on('close', () => resolve());
  });
  let received = 0;
  try {
    for await (const chunk of chunks) {
      if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('the build was cancelled');
      received += chunk.length;
      // Refused before the parser sees it: nothing past the cap is written.
      if (received > limits.maxBytes) throw new ContextRefusedError(`more than the ${limits.maxBytes} bytes (${mib(limits.maxBytes)}) this manager accepts`);
      if (failure !== undefined) break;
      if (!sawData && chunk.some((b) => b !== 0)) sawData = true;
      if (!parser.write(chunk)) await new Promise<void>((resolve) => parser.once('drain', resolve));
    }
  } catch (err) {
    fail(err);
  }
  // Ending the parser also ends a half-read entry, so a handler waiting for its data returns.
  parser.end();
  await parserDone;
  await chain;
  if (failure !== undefined) throw failure;
  if (received === 0) throw new ContextRefusedError('the client sent no tar (an empty context is still an archive)');
  await writer.finish();
  return { bytes: received, entries: writer.entries };
}

class ContextWriter {
  entries = 0;
  /** Relative paths known to be real directories (made here, never symlinks). */
  private readonly knownDirs = new Set<string>(['']);
  private readonly dirModes: Array<{ full: string; mode: number; mtime: Date }> = [];
  private readonly symlinks: string[][] = [];

  constructor(
    private readonly root: string,
    private readonly limits: ContextLimits,
  ) {}

  async write(entry: ReadEntry): Promise<void> {
    if (entry.meta || entry.ignore) return;
    const parsed = contextPathParts(entry.path);
    if ('problem' in parsed) throw new ContextRefusedError(`entry ${quoteName(entry.path)}: ${parsed.problem}`);
    const parts = parsed.parts;
    if (parts.length === 0) return; // the context directory itself ("./")
    if (++this.entries > this.limits.maxEntries) throw new ContextRefusedError(`more than ${this.limits.maxEntries} entries (files, directories and links)`);
    const rel = parts.join('/');
    const what = `entry ${quoteName(rel)}`;
    await this.ensureDirectories(parts.slice(0, -1), what);
    const full = join(this.root, ...parts);
    const mode = (entry.mode ?? 0o644) & 0o7777;
    const mtime = entry.mtime ?? new Date(0);
    switch (entry.type) {
      case 'File':
      case 'OldFile':
      case 'ContiguousFile':
        return this.writeFile(entry, full, what, mode, mtime);
      case 'Directory': {
        const existing = await lstatOrUndefined(full);
        if (existing === undefined) await mkdir(full, 0o700);
        else if (!existing.isDirectory()) throw new ContextRefusedError(`${what}: a directory where the archive already put something else`);
        this.knownDirs.add(rel);
        this.dirModes.push({ full, mode, mtime });
        return;
      }
      case 'SymbolicLink':
        return this.writeSymlink(entry.linkpath ?? '', parts, full, what);
      case 'Link':
        return this.writeHardLink(entry.linkpath ?? '', full, what);
      case 'CharacterDevice':
      case 'BlockDevice':
        throw new ContextRefusedError(`${what}: a device node; a context holds only files, directories and links`);
      case 'FIFO':
        throw new ContextRefusedError(`${what}: a FIFO; a context holds only files, directories and links`);
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
        throw new ContextRefusedError(`${what}: unsupported tar entry type ${entry.type}`);
    }
  }

  private async writeFile(entry: ReadEntry, full: string, what: string, mode: number, mtime: Date): Promise<void> {
    // O_EXCL|O_NOFOLLOW: a path is written once, and never through something already there.
    const file = await open(full, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600).catch((err: unknown) => {
      if (errnoOf(err) === 'EEXIST' || errnoOf(err) === 'ELOOP') throw new ContextRefusedError(`${what}: appears twice in the archive`);
      throw err;
    });
    try {
      for await (const chunk of entry as AsyncIterable<Buffer>) {
        let offset = 0;
        while (offset < chunk.length) offset += (await file.write(chunk, offset, chunk.length - offset)).bytesWritten;
      }
      await file.chmod(mode);
      await file.utimes(mtime, mtime);
    } finally {
      await file.close();
    }
  }

  private async writeSymlink(target: string, parts: string[], full: string, what: string): Promise<void> {
    if (target === '') throw new ContextRefusedError(`${what}: a symlink without a target`);
    if (target.includes('\0') || Buffer.byteLength(target) > BUILD_LIMITS.maxPathBytes)
      throw new ContextRefusedError(`${what}: a symlink target with a NUL byte or longer than ${BUILD_LIMITS.maxPathBytes} bytes`);
    if (target.startsWith('/')) throw new ContextRefusedError(`${what}: a symlink to the absolute path ${quoteName(target)}, outside the context`);
    // Lexically first (the common mistake, said at once); chains are checked in finish().
    let depth = parts.length - 1;
    for (const part of target.split('/')) {
      if (part === '..') depth--;
      else if (part !== '' && part !== '.') depth++;
      if (depth < 0) throw new ContextRefusedError(`${what}: a symlink to ${quoteName(target)}, outside the context`);
    }
    await symlink(target, full).catch((err: unknown) => {
      if (errnoOf(err) === 'EEXIST') throw new ContextRefusedError(`${what}: appears twice in the archive`);
      throw err;
    });
    this.symlinks.push(parts);
  }

  private async writeHardLink(target: string, full: string, what: string): Promise<void> {
    const parsed = contextPathParts(target);
    if ('problem' in parsed) throw new ContextRefusedError(`${what}: a hard link to ${parsed.problem}`);
    const targetFull = join(this.root, ...parsed.parts);
    // The target's directories must be real ones made here, so the link cannot reach through a symlink.
    for (let i = 1; i < parsed.parts.length; i++) {
      if (!this.knownDirs.has(parsed.parts.slice(0, i).join('/'))) throw new ContextRefusedError(`${what}: a hard link to ${quoteName(target)}, which is not in the context before it`);
    }
    const info = await lstatOrUndefined(targetFull);
    if (info === undefined || !info.isFile()) throw new ContextRefusedError(`${what}: a hard link to ${quoteName(target)}, which is not a file earlier in the context`);
    await link(targetFull, full).catch((err: unknown) => {
      if (errnoOf(err) === 'EEXIST') throw new ContextRefusedError(`${what}: appears twice in the archive`);
      throw err;
    });
  }

  /** Makes every directory above an entry (0755 when the archive has no entry for it), refusing anything that is not a real directory. */
  private async ensureDirectories(parts: string[], what: string): Promise<void> {
    for (let i = 1; i <= parts.length; i++) {
      const rel = parts.slice(0, i).join('/');
      if (this.knownDirs.has(rel)) continue;
      const full = join(this.root, ...parts.slice(0, i));
      const info = await lstatOrUndefined(full);
      if (info === undefined) await mkdir(full, 0o755);
      else if (info.isSymbolicLink()) throw new ContextRefusedError(`${what}: would be written through the symlink ${quoteName(rel)}`);
      else if (!info.isDirectory()) throw new ContextRefusedError(`${what}: ${quoteName(rel)} is not a directory`);
      this.knownDirs.add(rel);
    }
  }

  /** Checks where every link leads, now that all are there; then sets directory modes and times (writing into a directory changes its mtime). */
  async finish(): Promise<void> {
    for (const parts of this.symlinks) {
      const outcome = await this.resolvesInside(parts);
      if (outcome !== 'inside') throw new ContextRefusedError(`entry ${quoteName(parts.join('/'))}: a symlink that ${outcome}`);
    }
    for (const { full, mode, mtime } of this.dirModes.reverse()) {
      await chmod(full, mode);
      await utimes(full, mtime, mtime);
    }
  }

  /**
   * Follows the link at `parts` component by component as the kernel would, with the context as
   * the whole world: 'inside' when it never climbs above the context. A missing component ends
   * the walk (the link dangles, inside or not; the rest is read lexically).
   */
  private async resolvesInside(parts: string[]): Promise<'inside' | 'leads outside the context' | 'loops'> {
    let current = parts.slice(0, -1);
    let pending = (await readlink(join(this.root, ...parts))).split('/');
    let hops = 0;
    let exists = true;
    while (pending.length > 0) {
      const part = pending.shift()!;
      if (part === '' || part === '.') continue;
      if (part === '..') {
        if (current.length === 0) return 'leads outside the context';
        current = current.slice(0, -1);
        continue;
      }
      const next = [...current, part];
      const info = exists ? await lstatOrUndefined(join(this.root, ...next)) : undefined;
      if (info === undefined) exists = false;
      if (info?.isSymbolicLink()) {
        if (++hops > MAX_LINK_HOPS) return 'loops';
        const target = await readlink(join(this.root, ...next));
        if (target.startsWith('/')) return 'leads outside the context';
        pending = [...target.split('/'), ...pending];
        continue;
      }
      current = next;
    }
    return 'inside';
  }
}
