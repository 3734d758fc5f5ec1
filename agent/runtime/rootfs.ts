// Per-container overlayfs root: read-only image layers below, a private upper dir for writes.

import fs from 'node:fs/promises';
import path from 'node:path';
import { mount, umount } from './native.js';

// Overlay's option string must fit in one page.
const MAX_OVERLAY_OPTIONS = 4000;

/**
 * Mounts an overlay of `layerDirs` (image order: bottom layer first, as the image store returns
 * them) at <containerDir>/rootfs, with upper/ and work/ beside it. Returns the rootfs path.
 */
export async function mountOverlayRootfs(layerDirs: string[], containerDir: string): Promise<string> {
  if (layerDirs.length === 0) throw new Error('mountOverlayRootfs: at least one layer directory is needed');
  const lowers = layerDirs.map((d) => path.resolve(d));
  for (const dir of lowers) {
    if (/[:,]/.test(dir)) throw new Error(`mountOverlayRootfs: layer path ${dir} contains ':' or ',' which overlay options cannot carry`);
  }
  const base = path.resolve(containerDir);
  const upper = path.join(base, 'upper');
  const work = path.join(base, 'work');
  const rootfs = path.join(base, 'rootfs');
  for (const dir of [upper, work, rootfs]) await fs.mkdir(dir, { recursive: true });
  // overlay lists lowerdir topmost first.
  const options = `lowerdir=${[...lowers].reverse().join(':')},upperdir=${upper},workdir=${work}`;
  if (options.length > MAX_OVERLAY_OPTIONS) {
    throw new Error(`mountOverlayRootfs: ${layerDirs.length} layers make overlay options too long (${options.length} bytes)`);
  }
  mount('overlay', rootfs, 'overlay', [], options);
  return rootfs;
}

/** Unmounts <containerDir>/rootfs; a rootfs that is not mounted is fine. Leaves the directories. */
export async function unmountRootfs(containerDir: string): Promise<void> {
  const rootfs = path.join(path.resolve(containerDir), 'rootfs');
  try {
    umount(rootfs, false);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EINVAL' || code === 'ENOENT') return; // not a mount point / already gone
    if (code === 'EBUSY') {
      // Something still has it open (e.g. a dying container): detach now, the kernel frees it later.
      umount(rootfs, true);
      return;
    }
    throw err;
  }
}
