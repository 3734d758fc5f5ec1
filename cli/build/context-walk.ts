// Which files of a build context are sent (tsctl build, Compose build:): the directory walked
// without following symlinks, with .dockerignore applied as Docker's CLI applies it. Patterns are
// matched by @balena/dockerignore (a port of Docker's matcher); the walk itself follows Docker's:
// an ignored directory is not descended into unless an exception (`!pattern`) starts with its
// path, so files under it can be brought back only by naming the way to them. The Dockerfile and
// .dockerignore are sent even when ignored: the builder needs the one, and applies the other to
// keep both out of COPY, as Docker's builder does.
import dockerignore from '@balena/dockerignore';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';

import { BUILD_LIMITS } from '../../common/build/request-limits.js';

export interface ContextEntry {
  /** Relative to the context, with / separators. */
  path: string;
  kind: 'file' | 'directory' | 'symlink';
  /** Bytes of a file's content; 0 for the others. */
  size: number;
  /** A symlink's target, as stored. */
  target?: string;
}

export interface WalkedContext {
  entries: ContextEntry[];
  /** Entries left out by .dockerignore (directories left out whole count once). */
  ignored: number;
}

export class ContextWalkError extends Error {
  constructor(context: string, message: string) {
    super(`build context ${context}: ${message}`);
    this.name = 'ContextWalkError';
  }
}

// CommonJS whose types say `export default`: under NodeNext the factory is the module's `default` (it sets both).
const ignore = dockerignore.default;

const IGNORE_FILE = '.dockerignore';
/** A .dockerignore larger than this is not a list of patterns. */
const MAX_IGNORE_FILE_BYTES = 1024 * 1024;

/** The exception patterns of a .dockerignore as Docker cleans them (for its directory-skip rule). Pure. */
export function exceptionPatterns(lines: readonly string[]): string[] {
  const out: string[] = [];
  for (const raw of lines) {
    const line = raw.trim();
    if (!line.startsWith('!')) continue;
    let pattern = line.slice(1).trim();
    // filepath.Clean, then a leading / dropped: the same anchoring the matcher uses.
    pattern = pattern.split('/').filter((p) => p !== '' && p !== '.').join('/');
    if (pattern !== '') out.push(pattern);
  }
  return out;
}

/** The lines of a .dockerignore, without comments and blanks. Pure. */
export function ignoreLines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

/**
 * The entries of `dir` a build sends, sorted by path (parents before children). `alwaysSend` are
 * relative paths sent even when ignored (the Dockerfile). Refuses special files and symlinks that
 * lead outside the context, naming them, since the manager would refuse them too.
 */
export async function walkContext(dir: string, alwaysSend: readonly string[] = []): Promise<WalkedContext> {
  const ignoreText = await readFile(join(dir, IGNORE_FILE)).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw new ContextWalkError(dir, `cannot read ${IGNORE_FILE}: ${err.message}`);
  });
  if (ignoreText !== undefined && ignoreText.length > MAX_IGNORE_FILE_BYTES)
    throw new ContextWalkError(dir, `${IGNORE_FILE} is ${ignoreText.length} bytes; at most ${MAX_IGNORE_FILE_BYTES}`);
  const lines = ignoreLines(ignoreText?.toString('utf8') ?? '');
  const matcher = ignore().add(lines);
  const exceptions = exceptionPatterns(lines);
  const forced = new Set([...alwaysSend, ...(ignoreText === undefined ? [] : [IGNORE_FILE])]);
  const walked: WalkedContext = { entries: [], ignored: 0 };

  const visit = async (rel: string): Promise<void> => {
    const names = (await readdir(rel === '' ? dir : join(dir, rel))).sort();
    for (const name of names) {
      const path = rel === '' ? name : `${rel}/${name}`;
      const info = await lstat(join(dir, path));
      if (matcher.ignores(path) && !forced.has(path)) {
        walked.ignored++;
        // Docker descends into an ignored directory only when an exception names a way into it.
        if (info.isDirectory() && exceptions.some((p) => `${p}/`.startsWith(`${path}/`))) await visit(path);
        continue;
      }
      if (walked.entries.length >= BUILD_LIMITS.maxContextEntries)
        throw new ContextWalkError(dir, `more than ${BUILD_LIMITS.maxContextEntries} files, directories and links; leave some out with ${IGNORE_FILE}`);
      if (Buffer.byteLength(path) > BUILD_LIMITS.maxPathBytes) throw new ContextWalkError(dir, `the path ${path.slice(0, 80)}… is longer than ${BUILD_LIMITS.maxPathBytes} bytes`);
      walked.entries.push(await entryOf(dir, path, info));
      if (info.isDirectory()) await visit(path);
    }
  };
  await visit('');
  // A forced path under an ignored directory that was never descended into.
  for (const path of forced) {
    if (walked.entries.some((e) => e.path === path)) continue;
    const info = await lstat(join(dir, path)).catch(() => undefined);
    if (info?.isFile()) walked.entries.push({ path, kind: 'file', size: info.size });
  }
  walked.entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return walked;
}

async function entryOf(dir: string, path: string, info: Awaited<ReturnType<typeof lstat>>): Promise<ContextEntry> {
  if (info.isFile()) return { path, kind: 'file', size: Number(info.size) };
  if (info.isDirectory()) return { path, kind: 'directory', size: 0 };
  if (info.isSymbolicLink()) {
    const target = await readlink(join(dir, path));
    const problem = symlinkProblem(path, target);
    if (problem !== undefined) throw new ContextWalkError(dir, `${path} is ${problem}; the manager refuses such links (leave it out with ${IGNORE_FILE})`);
    return { path, kind: 'symlink', size: 0, target };
  }
  const what = info.isFIFO() ? 'a FIFO' : info.isSocket() ? 'a socket' : 'a device node';
  throw new ContextWalkError(dir, `${path} is ${what}: a context holds files, directories and links (leave it out with ${IGNORE_FILE})`);
}

/** Why a symlink at `path` to `target` leads out of the context, read lexically; undefined when it does not. Pure. */
export function symlinkProblem(path: string, target: string): string | undefined {
  if (target.startsWith('/')) return `a symlink to the absolute path ${target}, outside the context`;
  let depth = path.split('/').length - 1;
  for (const part of target.split('/')) {
    if (part === '..') depth--;
    else if (part !== '' && part !== '.') depth++;
    if (depth < 0) return `a symlink to ${target}, outside the context`;
  }
  return undefined;
}

/** The size of the tar the entries make, as node-tar writes it: a header each, data in 512-byte blocks, long names in a pax header. Pure. */
export function tarBytesOf(entries: readonly ContextEntry[]): number {
  let total = 1024; // the two zero blocks that end an archive
  for (const entry of entries) {
    total += 512;
    const name = entry.kind === 'directory' ? `${entry.path}/` : entry.path;
    // ustar has 100 bytes for a name (and a 155-byte prefix); node-tar uses a pax header for longer ones.
    if (Buffer.byteLength(name) > 100 || Buffer.byteLength(entry.target ?? '') > 100) {
      const paxBody = Buffer.byteLength(name) + Buffer.byteLength(entry.target ?? '') + 64;
      total += 512 + Math.ceil(paxBody / 512) * 512;
    }
    total += Math.ceil(entry.size / 512) * 512;
  }
  return total;
}

/**
 * Where a context's bytes are, for the message that says it is too large: the top-level entries
 * with their totals (a directory's is everything sent below it), largest first. Pure.
 */
export function largestEntries(entries: readonly ContextEntry[], count = 5): Array<{ path: string; bytes: number }> {
  const totals = new Map<string, number>();
  for (const entry of entries) {
    const slash = entry.path.indexOf('/');
    const top = slash === -1 ? (entry.kind === 'directory' ? `${entry.path}/` : entry.path) : `${entry.path.slice(0, slash)}/`;
    totals.set(top, (totals.get(top) ?? 0) + entry.size);
  }
  return [...totals]
    .map(([path, bytes]) => ({ path, bytes }))
    .sort((a, b) => b.bytes - a.bytes || (a.path < b.path ? -1 : 1))
    .slice(0, count);
}
