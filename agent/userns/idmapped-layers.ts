// Image layers seen owned by a service's range through idmapped mounts: nothing is copied or
// chowned on disk. Each layer gets an idmapped bind (the range's maps, carried by a user namespace
// with no process in it) only while the rootfs overlay is mounted: overlayfs keeps private clones
// of its layers' mounts, idmap included, so the binds are detached right after and the rootfs needs
// nothing more at unmount or after an agent restart.
//
// The binds go under <userns dir>/idmapped/, never inside a container's bundle: a bind left behind
// by a crash there would take the image's own files with it when the bundle is removed (rm -r).
import { closeSync } from 'node:fs';
import { lstat, mkdir, readdir, rm, rmdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

import { isAbsent } from '../fs-errors.js';
import { createUserNamespace, idmappedMount, umount } from '../runtime/native.js';
import { mountOverlayRootfs } from '../runtime/rootfs.js';
import type { ServiceIdRange } from './id-ranges.js';

/** Pure: the uid_map and gid_map lines of a range (container 0.. onto the range's start). */
export function idMapsOf(range: ServiceIdRange): { uidMap: string; gidMap: string } {
  return { uidMap: `0 ${range.uidStart} ${range.size}\n`, gidMap: `0 ${range.gidStart} ${range.size}\n` };
}

/** Runs `use` with an fd of a user namespace carrying the range's maps; the fd is closed after. */
function withRangeNamespace<T>(range: ServiceIdRange, use: (usernsFd: number) => T): T {
  const { uidMap, gidMap } = idMapsOf(range);
  const fd = createUserNamespace(uidMap, gidMap);
  try {
    return use(fd);
  } finally {
    closeSync(fd);
  }
}

/** Detaches a bind if one is there; EINVAL (not a mount point) and ENOENT are fine. */
function detach(path: string): void {
  try {
    umount(path, true);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'ENOENT') throw err;
  }
}

/** Detaches and removes one staging directory's binds (<staging>/<i>), then the directory. Never removes recursively. */
async function clearStaging(staging: string): Promise<void> {
  const names = await readdir(staging).catch((err: unknown) => {
    if (isAbsent(err)) return [];
    throw err;
  });
  for (const name of names) {
    const path = join(staging, name);
    detach(path);
    // rmdir, not rm -r: should a bind still be there, this fails instead of emptying a layer.
    await rmdir(path).catch((err: unknown) => {
      if (!isAbsent(err)) throw err;
    });
  }
  await rmdir(staging).catch((err: unknown) => {
    if (!isAbsent(err)) throw err;
  });
}

/** The prefix of a probe's directory under <root> (range-rootfs.ts); the other directories are stagings. */
export const PROBE_PREFIX = 'probe-';

/** Removes what an earlier process left under <root>: binds of a mount it did not finish, a probe's overlay. */
export async function clearIdmappedLeftovers(root: string): Promise<void> {
  const names = await readdir(root).catch((err: unknown) => {
    if (isAbsent(err)) return [];
    throw err;
  });
  for (const name of names) {
    const path = join(root, name);
    if (!(await lstat(path)).isDirectory()) continue;
    if (!name.startsWith(PROBE_PREFIX)) {
      await clearStaging(path);
      continue;
    }
    // A probe holds only files of its own; once its binds and overlay are detached it can go whole.
    await clearStaging(join(path, 'staging'));
    detach(join(path, 'rootfs'));
    await rm(path, { recursive: true, force: true });
  }
}

/**
 * Mounts `layerDirs` (bottom first) as <containerDir>/rootfs through idmapped binds of the range,
 * staged under <root>/<random>/<i>; upper/ belongs to the range's root, as with shifted copies.
 */
export async function mountIdmappedRootfs(root: string, layerDirs: readonly string[], containerDir: string, range: ServiceIdRange): Promise<string> {
  await mkdir(root, { recursive: true, mode: 0o700 });
  const staging = join(root, randomBytes(6).toString('hex'));
  await mkdir(staging, { mode: 0o700 });
  let rootfs: string | undefined;
  let failure: Error | undefined;
  try {
    const lowers = layerDirs.map((_, i) => join(staging, String(i)));
    for (const lower of lowers) await mkdir(lower);
    withRangeNamespace(range, (usernsFd) => lowers.forEach((lower, i) => idmappedMount(layerDirs[i]!, lower, usernsFd)));
    rootfs = await mountOverlayRootfs(lowers, containerDir, { uid: range.uidStart, gid: range.gidStart });
  } catch (err) {
    failure = err as Error;
  }
  try {
    await clearStaging(staging);
  } catch (err) {
    // The mount's own failure says more; a staging left behind is cleared by the next agent.
    if (failure === undefined) failure = new Error(`idmapped layers: clearing ${staging}: ${(err as Error).message}`);
  }
  if (failure !== undefined) throw failure;
  if (rootfs === undefined) throw new Error('idmapped layers: no rootfs was mounted');
  return rootfs;
}
