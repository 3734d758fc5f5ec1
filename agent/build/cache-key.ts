// Pure: the keys of the step cache. A step's key is a sha256 over its parent's key, the step as the
// planner canonicalised it (cacheText) and a digest of the files it reads, so a step is taken from
// the cache only when everything that could change its result is the same. Every field is length-
// prefixed (JSON), so no two different inputs hash the same text.
import { createHash } from 'node:crypto';

/** One file a COPY or ADD reads, as far as it decides the step's result (not its mtime). */
export interface SourceFileDigest {
  /** Path relative to the source root, "/"-separated. */
  path: string;
  type: 'file' | 'directory' | 'symlink';
  mode: number;
  uid: number;
  gid: number;
  /** sha256 of a file's content. */
  sha256?: string;
  /** A symlink's target. */
  target?: string;
  /** For a second name of one inode: the step's first name of it (COPY keeps them linked). */
  linkOf?: string;
  /** The xattrs a copy keeps ("name=hex" lines, sorted), when there are any. */
  xattrs?: string;
}

export type CacheBase =
  | { kind: 'scratch' }
  /** FROM an image: the config digest names its content (two tags of one image share their cache). */
  | { kind: 'image'; configDigest: string };

/** The key every step of a stage starts from. */
export function baseCacheKey(base: CacheBase): string {
  return hash(['base', base.kind, base.kind === 'image' ? base.configDigest : '']);
}

/** The key of a step: its parent's key, its canonical text and the digest of what it reads ('' for nothing). */
export function stepCacheKey(parent: string, cacheText: string, inputsDigest = ''): string {
  return hash(['step', parent, cacheText, inputsDigest]);
}

/** A digest of the files a step reads, independent of the order they were found in. */
export function sourcesDigest(files: readonly SourceFileDigest[]): string {
  const sorted = [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]?.path === sorted[i - 1]?.path) throw new Error(`sourcesDigest: ${sorted[i]?.path ?? ''} is listed twice`);
  }
  // linkOf and xattrs only where set, so the keys of steps without them stay what they were.
  return hash(
    sorted.map((f) => [
      f.path,
      f.type,
      f.mode & 0o7777,
      f.uid,
      f.gid,
      f.sha256 ?? '',
      f.target ?? '',
      ...(f.linkOf === undefined ? [] : [f.linkOf]),
      ...(f.xattrs === undefined ? [] : [`xattrs:${f.xattrs}`]),
    ]),
  );
}

/** Several digests (a COPY's sources one by one, or a stage's result) as one. */
export function combineDigests(parts: readonly string[]): string {
  return hash(['combined', ...parts]);
}

function hash(value: unknown): string {
  return `sha256:${createHash('sha256').update(JSON.stringify(value)).digest('hex')}`;
}
