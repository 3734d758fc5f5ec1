// A read-only rootfs of a user-namespaced container is made read-only from the host's side before
// the container's init runs (rootfs.ts makeRootfsReadonly), so the init can no longer create the
// directories and files its mounts go on. They are made here first, owned by the container's root.
// Paths are walked one component at a time without following symlinks: where the image has a
// symlink on the way, nothing is made (the runtime resolves that path inside the rootfs, and then
// fails naming it if the destination is missing).
import { lchown, lstat, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { isAbsent } from '../fs-errors.js';
import type { ServiceIdRange } from './id-ranges.js';

export interface MountPoint {
  /** Absolute path inside the container. */
  destination: string;
  /** The mount goes on a file (a bind of a file), else on a directory. */
  file: boolean;
}

/** Mount points the runtime itself provides (its /proc, /dev and /sys mounts carry their own). */
const RUNTIME_ROOTS = ['proc', 'dev', 'sys'];

/** Pure: the destination's components, or undefined when the runtime's own mounts hold it. */
export function destinationSegments(destination: string): string[] | undefined {
  const segments = destination.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.length === 0 || segments.includes('..') || RUNTIME_ROOTS.includes(segments[0]!)) return undefined;
  return segments;
}

async function kindAt(path: string): Promise<'dir' | 'other' | 'absent'> {
  try {
    return (await lstat(path)).isDirectory() ? 'dir' : 'other';
  } catch (err) {
    if (isAbsent(err)) return 'absent';
    throw err;
  }
}

/** Makes the missing mount points under `rootfs` (host side, before it turns read-only). */
export async function makeMountPoints(rootfs: string, points: readonly MountPoint[], range: ServiceIdRange): Promise<void> {
  for (const point of points) {
    const segments = destinationSegments(point.destination);
    if (segments === undefined) continue;
    let path = rootfs;
    for (const [i, segment] of segments.entries()) {
      path = join(path, segment);
      const last = i === segments.length - 1;
      const kind = await kindAt(path);
      if (kind === 'dir') continue;
      // A symlink or a file on the way: left to the runtime.
      if (kind === 'other') break;
      if (last && point.file) await writeFile(path, '', { flag: 'wx', mode: 0o644 });
      else await mkdir(path, { mode: 0o755 });
      await lchown(path, range.uidStart, range.gidStart);
    }
  }
}

/** The mount points of config.json mounts: a bind whose source is not a directory goes on a file. */
export async function mountPointsOf(mounts: ReadonlyArray<{ destination: string; type?: string; source?: string }>): Promise<MountPoint[]> {
  const out: MountPoint[] = [];
  for (const m of mounts) {
    const file = m.type === 'bind' && m.source !== undefined && (await kindAt(m.source)) === 'other';
    out.push({ destination: m.destination, file });
  }
  return out;
}
