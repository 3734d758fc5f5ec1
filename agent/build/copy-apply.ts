// Writes a COPY's or ADD's sources into a stage's mounted rootfs (whose upper dir becomes the
// step's layer), with Docker's rules: a directory's contents are copied, not the directory; a
// destination ending in "/", several sources, or an existing directory mean "into this directory";
// files keep their mode and mtime, take --chown's owner (root for the context) and --chmod's mode.
// Every path is resolved inside the rootfs (in-root.ts), and every file is created with O_NOFOLLOW.
// Names of one inode among the sources stay one inode (hard links), as BuildKit and buildah keep them.
import { constants } from 'node:fs';
import { copyFile, lchown, link, lstat, lutimes, mkdir, open, rm, symlink, chmod, chown, utimes, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { BuildError } from '../../common/build/builder.js';
import { pathComponents, resolveComponents } from './in-root.js';
import type { MatchedSource, SourceEntry } from './copy-sources.js';
import { isAbsent, unlessAbsent } from '../fs-errors.js';
import { lgetxattr, llistxattr, lsetxattr } from '../runtime/native.js';
import { keptXattr } from './layer-diff.js';
import { parseGroup, parsePasswd, resolveUser } from '../worker/container-config.js';

export interface CopyOptions {
  rootfs: string;
  /** Absolute container path; a trailing "/" means a directory. */
  dest: string;
  /** --chown's owner of everything copied; without it root, or the source's own for matches that keep theirs. */
  owner?: { uid: number; gid: number };
  chmod?: number;
  what: string;
}

/** Copies `matches` into the rootfs at `options.dest`. */
export async function applyCopy(matches: readonly MatchedSource[], options: CopyOptions): Promise<void> {
  const { rootfs, dest } = options;
  const single = matches.length === 1 ? matches[0] : undefined;
  const destIsDir =
    dest.endsWith('/') || matches.length > 1 || single?.entries[0]?.type === 'directory' || (await isDirectoryInRoot(rootfs, dest));
  if (destIsDir) await mkdirInRoot(rootfs, dest, options.owner, true);
  const written = new Map<string, string>();
  for (const match of matches) {
    const top = match.entries[0] as SourceEntry;
    if (top.type === 'directory') {
      for (const entry of match.entries.slice(1)) await writeEntry(rootfs, `${dest}/${entry.rel}`, entry, match.keepOwners, options, written);
    } else {
      const target = destIsDir ? `${dest}/${basename(match.path)}` : dest;
      await writeEntry(rootfs, target, top, match.keepOwners, options, written);
    }
  }
}

/**
 * Creates the directory `path` (container path) and any missing parents; returns its host path.
 * `owner` owns the last one if this made it, or with `ownEveryCreated` every one this made: COPY
 * --chown gives the directories it creates to the new owner, as BuildKit and buildah do.
 */
export async function mkdirInRoot(rootfs: string, path: string, owner?: { uid: number; gid: number }, ownEveryCreated = false): Promise<string> {
  const components = await resolveComponents(rootfs, path, true);
  for (let i = 1; i <= components.length; i++) {
    const host = join(rootfs, ...components.slice(0, i));
    const info = await unlessAbsent(lstat(host), undefined);
    if (info === undefined) {
      await mkdir(host, { mode: 0o755 });
      await chmod(host, 0o755); // not narrowed by the umask
      if (owner !== undefined && (ownEveryCreated || i === components.length)) await chown(host, owner.uid, owner.gid);
    } else if (!info.isDirectory()) {
      throw new BuildError(`/${components.slice(0, i).join('/')} is not a directory`);
    }
  }
  return join(rootfs, ...components);
}

/** uid and gid of "user[:group]" from the stage's /etc/passwd and /etc/group (numbers need neither). */
export async function lookupOwner(rootfs: string, spec: string): Promise<{ uid: number; gid: number }> {
  const passwd = parsePasswd(await readInRoot(rootfs, '/etc/passwd'));
  const groups = parseGroup(await readInRoot(rootfs, '/etc/group'));
  const [user = '', group] = spec.split(':');
  // --chown=1000 means 1000:1000 (Docker), not the passwd entry's group as USER would.
  if (/^\d+$/.test(user) && group === undefined) return { uid: Number(user), gid: Number(user) };
  try {
    return resolveUser(spec, passwd, groups);
  } catch (error) {
    throw new BuildError(`--chown=${spec}: ${(error as Error).message}`);
  }
}

/** A file of the rootfs as text, '' when it does not exist; symlinks are resolved inside the rootfs. */
export async function readInRoot(rootfs: string, path: string): Promise<string> {
  const host = join(rootfs, ...(await resolveComponents(rootfs, path, true)));
  return unlessAbsent(readFile(host, 'utf8'), '');
}

async function isDirectoryInRoot(rootfs: string, path: string): Promise<boolean> {
  const host = join(rootfs, ...(await resolveComponents(rootfs, path, true)));
  const info = await unlessAbsent(lstat(host), undefined);
  return info?.isDirectory() ?? false;
}

/** `written`: host path of the copy made of each source inode with several names, in this step. */
async function writeEntry(
  rootfs: string,
  containerPath: string,
  entry: SourceEntry,
  keepOwner: boolean,
  options: CopyOptions,
  written: Map<string, string>,
): Promise<void> {
  const parts = pathComponents(containerPath);
  const name = parts.pop();
  if (name === undefined || name === '..') throw new BuildError(`${options.what}: cannot copy onto ${containerPath}`);
  const parent = await mkdirInRoot(rootfs, `/${parts.join('/')}`, options.owner, true);
  const host = join(parent, name);
  const existing = await unlessAbsent(lstat(host), undefined);
  const owner = options.owner ?? (keepOwner ? { uid: entry.uid, gid: entry.gid } : { uid: 0, gid: 0 });
  const mode = options.chmod ?? entry.mode;
  if (entry.type === 'directory') {
    if (existing?.isDirectory() === true) return; // an existing directory keeps its own metadata
    if (existing !== undefined) await rm(host, { force: true });
    await mkdir(host, { mode: 0o700 });
    await chown(host, owner.uid, owner.gid);
    await chmod(host, mode);
    copyKeptXattrs(entry.hostPath, host);
    await utimes(host, entry.mtime, entry.mtime);
    return;
  }
  if (existing?.isDirectory() === true) throw new BuildError(`${options.what}: cannot overwrite directory ${containerPath} with a non-directory`);
  if (existing !== undefined) await rm(host, { force: true });
  if (entry.type === 'symlink') {
    await symlink(entry.target ?? '', host);
    await lchown(host, owner.uid, owner.gid);
    await lutimes(host, entry.mtime, entry.mtime);
    return;
  }
  const first = entry.inode === undefined ? undefined : written.get(entry.inode);
  if (first !== undefined && (await unlessAbsent(lstat(first), undefined))?.isFile() === true) {
    // Owner and mode are the inode's, already set through its first name.
    await link(first, host);
    return;
  }
  await copyRegularFile(entry.hostPath, host);
  if (entry.inode !== undefined) written.set(entry.inode, host);
  await chown(host, owner.uid, owner.gid);
  await chmod(host, mode); // after chown, which clears set-id bits
  copyKeptXattrs(entry.hostPath, host); // after chown too, which clears a file capability
  await utimes(host, entry.mtime, entry.mtime);
}

/** The xattrs a layer may carry (file capabilities, user.*), from a source to its copy, as BuildKit's copy keeps them. */
function copyKeptXattrs(source: string, target: string): void {
  for (const name of llistxattr(source).filter(keptXattr)) {
    const value = lgetxattr(source, name);
    if (value !== undefined) lsetxattr(target, name, value);
  }
}

/** Copies content into a new file at `target`, never through something that appeared there. */
async function copyRegularFile(source: string, target: string): Promise<void> {
  const file = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  await file.close();
  try {
    // copyFile may clone (reflink) where the file system can; the target exists and is ours.
    await copyFile(source, target);
  } catch (error) {
    if (isAbsent(error)) throw new BuildError(`${source} disappeared while it was copied`);
    throw error;
  }
}
