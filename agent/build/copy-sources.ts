// The files a COPY or ADD reads: its source patterns expanded against a root (the build context or
// another stage's or image's rootfs), every match resolved inside that root, directories walked
// without following the symlinks in them, and a digest of it all for the step cache.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BuildError } from '../../common/build/builder.js';
import { combineDigests, sourcesDigest, type SourceFileDigest } from './cache-key.js';
import { pathComponents, resolveComponents } from './in-root.js';
import { isAbsent } from '../fs-errors.js';
import { lgetxattr, llistxattr } from '../runtime/native.js';
import { keptXattr } from './layer-diff.js';

export interface SourceEntry {
  /** Path below the match, "/"-separated; "" for the match itself. */
  rel: string;
  hostPath: string;
  type: 'file' | 'directory' | 'symlink';
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
  size: number;
  /** A symlink's target, as stored. */
  target?: string;
  /** "dev:ino" of a file with more than one name, so the copy keeps names of one inode linked. */
  inode?: string;
}

export interface MatchedSource {
  /** The pattern as the step gave it. */
  pattern: string;
  /** The match's path below the source root ("/"-separated, symlinks resolved). */
  path: string;
  /** The match and, for a directory, everything below it (parents before children, sorted). */
  entries: SourceEntry[];
  /** Files keep their owners (another stage's or image's files, an unpacked archive); else root owns them. */
  keepOwners: boolean;
}

/** Pure: whether a path component has glob characters (Go's filepath.Match syntax, as Docker uses). */
export function hasGlob(component: string): boolean {
  return /[*?[\\]/.test(component);
}

/** Pure: a regular expression for one glob component: `*` and `?` never match "/", `[...]` a set, `\` escapes. */
export function globComponentRegex(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '\\' && i + 1 < pattern.length) out += escapeRegex(pattern[++i] as string);
    else if (c === '[') {
      const close = pattern.indexOf(']', i + 2);
      if (close < 0) throw new BuildError(`source pattern ${JSON.stringify(pattern)}: unclosed "["`);
      let set = pattern.slice(i + 1, close);
      if (set.startsWith('^') || set.startsWith('!')) set = `^${set.slice(1)}`;
      out += `[${set.replace(/\\/g, '\\\\')}]`;
      i = close;
    } else out += escapeRegex(c);
  }
  return new RegExp(`^${out}$`, 's');
}

/** Every match of `patterns` below `root`; a pattern that matches nothing fails the step. */
export async function expandSources(root: string, patterns: readonly string[], keepOwners: boolean, what: string): Promise<MatchedSource[]> {
  const matches: MatchedSource[] = [];
  for (const pattern of patterns) {
    const paths = await matchPattern(root, pattern);
    if (paths.length === 0) throw new BuildError(`${what}: ${JSON.stringify(pattern)}: no such file or directory`);
    for (const path of paths) {
      const components = await resolveComponents(root, path, true);
      const hostPath = join(root, ...components);
      const entries = await walkSource(hostPath, '');
      if (entries.length === 0) throw new BuildError(`${what}: ${JSON.stringify(pattern)}: no such file or directory`);
      matches.push({ pattern, path: components.join('/'), entries, keepOwners });
    }
  }
  return matches;
}

/** The digest of everything the matches contain, for the step's cache key. */
export async function digestOfMatches(matches: readonly MatchedSource[]): Promise<string> {
  const parts: string[] = [];
  // Which names share an inode decides the layer (one file or several), so it is part of the key.
  const firstNames = new Map<string, string>();
  for (const match of matches) {
    const files: SourceFileDigest[] = [];
    for (const entry of match.entries) {
      const digest: SourceFileDigest = { path: entry.rel, type: entry.type, mode: entry.mode, uid: entry.uid, gid: entry.gid };
      if (entry.inode !== undefined) {
        const name = `${match.path}/${entry.rel}`;
        const first = firstNames.get(entry.inode);
        if (first === undefined) firstNames.set(entry.inode, name);
        else digest.linkOf = first;
      }
      if (entry.type === 'file') digest.sha256 = await fileSha256(entry.hostPath);
      if (entry.type !== 'symlink') {
        const xattrs = keptXattrLines(entry.hostPath);
        if (xattrs !== '') digest.xattrs = xattrs;
      }
      if (entry.target !== undefined) digest.target = entry.target;
      files.push(digest);
    }
    parts.push(combineDigests([match.pattern, match.path, sourcesDigest(files)]));
  }
  return combineDigests(parts);
}

/** Paths below `root` matching `pattern`, sorted; literal components are kept even when missing (the caller finds out). */
async function matchPattern(root: string, pattern: string): Promise<string[]> {
  let prefixes: string[][] = [[]];
  for (const component of pathComponents(pattern)) {
    if (!hasGlob(component)) {
      prefixes = prefixes.map((p) => [...p, component]);
      continue;
    }
    const regex = globComponentRegex(component);
    const next: string[][] = [];
    for (const prefix of prefixes) {
      const dir = join(root, ...(await resolveComponents(root, prefix.join('/'), true)));
      let names: string[];
      try {
        names = await readdir(dir);
      } catch (error) {
        if (isAbsent(error)) continue; // nothing below a missing directory matches
        throw error;
      }
      for (const name of names.sort()) if (regex.test(name)) next.push([...prefix, name]);
    }
    prefixes = next;
  }
  const found: string[] = [];
  for (const prefix of prefixes) {
    const hostPath = join(root, ...(await resolveComponents(root, prefix.join('/'), true)));
    try {
      await lstat(hostPath);
      found.push(prefix.join('/'));
    } catch (error) {
      if (!isAbsent(error)) throw error;
    }
  }
  return found;
}

/** A directory (an unpacked ADD archive, heredoc files) as one source whose contents are copied. */
export async function directorySource(hostDir: string, label: string, keepOwners: boolean): Promise<MatchedSource> {
  return { pattern: label, path: label, entries: await walkSource(hostDir, ''), keepOwners };
}

async function walkSource(hostPath: string, rel: string): Promise<SourceEntry[]> {
  const info = await lstat(hostPath);
  const base = { rel, hostPath, mode: info.mode & 0o7777, uid: info.uid, gid: info.gid, mtime: info.mtime, size: info.size };
  if (info.isSymbolicLink()) return [{ ...base, type: 'symlink', target: await readlink(hostPath) }];
  if (info.isFile()) return [{ ...base, type: 'file', ...(info.nlink > 1 ? { inode: `${info.dev}:${info.ino}` } : {}) }];
  if (!info.isDirectory()) return []; // devices, fifos and sockets in a context are not copied, as with Docker
  const entries: SourceEntry[] = [{ ...base, type: 'directory' }];
  for (const name of (await readdir(hostPath)).sort()) {
    entries.push(...(await walkSource(join(hostPath, name), rel === '' ? name : `${rel}/${name}`)));
  }
  return entries;
}

/** The xattrs a copy keeps, as sorted "name=hex" lines ('' for none): they change the layer, so the key. */
function keptXattrLines(path: string): string {
  return llistxattr(path)
    .filter(keptXattr)
    .sort()
    .map((name) => `${name}=${lgetxattr(path, name)?.toString('hex') ?? ''}`)
    .join('\n');
}

async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) hash.update(chunk);
  return `sha256:${hash.digest('hex')}`;
}

function escapeRegex(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
