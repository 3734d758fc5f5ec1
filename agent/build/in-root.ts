// Resolving a path inside a root directory (a build context, a stage's rootfs) the way the kernel
// resolves it for a process chrooted there: ".." stops at the root and an absolute symlink target
// starts again from the root, so no symlink in an image or a context can lead a host-side read or
// write outside it. A build runs no container while it resolves these, so nothing changes them
// between the check and the use.
import { lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { isAbsent } from '../fs-errors.js';

const MAX_SYMLINKS = 40;

/** Pure: the components of `path` without empty and "." ones. */
export function pathComponents(path: string): string[] {
  return path.split('/').filter((c) => c !== '' && c !== '.');
}

/**
 * The host path that `path` (as seen from inside `root`) stands for, with every symlink resolved
 * inside `root`; the last component's symlink only when `followLast`. Components that do not
 * exist are kept as written (".." in them still cannot climb above the root).
 */
export async function resolveInRoot(root: string, path: string, followLast: boolean): Promise<string> {
  return join(root, ...(await resolveComponents(root, path, followLast)));
}

/** Like resolveInRoot, as the components below `root` ("" for the root itself). */
export async function resolveComponents(root: string, path: string, followLast: boolean): Promise<string[]> {
  const resolved: string[] = [];
  const pending = pathComponents(path);
  let links = 0;
  let missing = false;
  while (pending.length > 0) {
    const component = pending.shift() as string;
    if (component === '..') {
      resolved.pop();
      continue;
    }
    if (missing) {
      resolved.push(component);
      continue;
    }
    const candidate = join(root, ...resolved, component);
    let isLink = false;
    try {
      isLink = (await lstat(candidate)).isSymbolicLink();
    } catch (error) {
      if (!isAbsent(error)) throw error;
      missing = true;
    }
    if (isLink && (pending.length > 0 || followLast)) {
      links += 1;
      if (links > MAX_SYMLINKS) throw new Error(`${path}: too many levels of symbolic links`);
      const target = await readlink(candidate);
      if (target.startsWith('/')) resolved.length = 0;
      pending.unshift(...pathComponents(target));
      continue;
    }
    resolved.push(component);
  }
  return resolved;
}
