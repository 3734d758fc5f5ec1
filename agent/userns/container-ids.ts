// What a task with `userns: auto` needs beyond its id range: the key its range is held under, and
// the files the agent itself writes into the container's root file system (as host root) handed to
// the container's root, which would otherwise see them owned by nobody and could not change them.
import { lchown, lstat } from 'node:fs/promises';
import { join } from 'node:path';

import type { Task } from '../../common/resources/types.js';
import { isAbsent } from '../fs-errors.js';
import type { ServiceIdRange } from './id-ranges.js';

/** The service a task's range belongs to: "<stack or _>/<service>". */
export function usernsServiceKey(task: Task): string {
  return `${task.spec.serviceStack || '_'}/${task.spec.serviceName}`;
}

/** Whether the task's containers run in a user namespace of their own. */
export function wantsUserNamespace(task: Task): boolean {
  return task.spec.spec.userns === 'auto';
}

/**
 * Gives the paths (relative to the rootfs, never followed when symlinks) that host root created
 * to the container's root. Paths the image already had keep their (shifted) owner; absent ones are skipped.
 */
export async function giveToContainerRoot(rootfs: string, relativePaths: readonly string[], range: ServiceIdRange): Promise<void> {
  for (const relative of relativePaths) {
    const path = join(rootfs, relative);
    try {
      const info = await lstat(path);
      if (info.uid === 0 && info.gid === 0) await lchown(path, range.uidStart, range.gidStart);
    } catch (err) {
      if (!isAbsent(err)) throw err;
    }
  }
}

/**
 * Pure: the directories strictly between `root` and each path that lies under it (the way down to
 * the path, not the path itself), each once. Paths outside `root` add nothing.
 */
export function directoriesOnTheWay(root: string, paths: readonly string[]): string[] {
  const base = root.replace(/\/+$/, '');
  const out = new Set<string>();
  for (const path of paths) {
    if (!path.startsWith(`${base}/`)) continue;
    const segments = path
      .slice(base.length + 1)
      .split('/')
      .filter((s) => s !== '');
    for (let i = 1; i < segments.length; i++) out.add(`${base}/${segments.slice(0, i).join('/')}`);
  }
  return [...out];
}
