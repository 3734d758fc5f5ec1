// Per-container overlayfs root: read-only image layers below, a private upper dir for writes.
// The host's mount is nosuid,nodev: a setuid binary or a device node a container made in its root
// file system means nothing to a host process that reaches it. Inside the container nothing
// changes: its processes run with no_new_privs (spec.ts), which ignores setuid bits anyway.

import fs from 'node:fs/promises';
import path from 'node:path';
import { mount, umount, type MountFlag } from './native.js';

// Overlay's option string must fit in one page.
const MAX_OVERLAY_OPTIONS = 4000;
/**
 * Per-mount flags, which the VFS applies to every file system type (overlay included), so no
 * kernel that mounts overlayfs refuses them.
 */
const ROOTFS_MOUNT_FLAGS: MountFlag[] = ['nosuid', 'nodev'];

/**
 * Mounts an overlay of `layerDirs` (image order: bottom layer first, as the image store returns
 * them) at <containerDir>/rootfs, nosuid and nodev, with upper/ and work/ beside it. Returns the
 * rootfs path. upper/ keeps mkdir's 0755: the overlay's root directory takes its mode, and the
 * container's non-root users must pass through `/`; <containerDir> is what keeps others out.
 * `rootOwner`: the host ids of the container's root when it has a user namespace; upper/ (the
 * overlay's `/`) is given to it, so that root can write its own `/`.
 */
export async function mountOverlayRootfs(layerDirs: string[], containerDir: string, rootOwner?: { uid: number; gid: number }): Promise<string> {
  if (layerDirs.length === 0) throw new Error('mountOverlayRootfs: at least one layer directory is needed');
  const lowers = layerDirs.map((d) => path.resolve(d));
  for (const dir of lowers) {
    if (/[:,]/.test(dir)) throw new Error(`mountOverlayRootfs: layer path ${dir} contains ':' or ',' which overlay options cannot carry`);
  }
  const base = path.resolve(containerDir);
  const upper = path.join(base, 'upper');
  const work = path.join(base, 'work');
  const rootfs = path.join(base, 'rootfs');
  for (const dir of [upper, rootfs]) await fs.mkdir(dir, { recursive: true });
  if (rootOwner !== undefined) await fs.chown(upper, rootOwner.uid, rootOwner.gid);
  // Only the kernel uses work/.
  await fs.mkdir(work, { recursive: true, mode: 0o700 });
  // overlay lists lowerdir topmost first.
  const options = `lowerdir=${[...lowers].reverse().join(':')},upperdir=${upper},workdir=${work}`;
  if (options.length > MAX_OVERLAY_OPTIONS) {
    throw new Error(`mountOverlayRootfs: ${layerDirs.length} layers make overlay options too long (${options.length} bytes)`);
  }
  mount('overlay', rootfs, 'overlay', ROOTFS_MOUNT_FLAGS, options);
  return rootfs;
}

/**
 * Makes a rootfs an older tsd mounted (without nosuid,nodev) nosuid,nodev on the host, for a
 * container this tsd takes over. Only the host's mount changes: a bind remount sets the per-mount
 * flags to those given (the kernel keeps the atime ones), and these mounts are read-write with no
 * others; the container's mount namespace has a copy of its own. Returns false when
 * <containerDir>/rootfs is not mounted.
 */
export function hardenRootfsMount(containerDir: string): boolean {
  const rootfs = path.join(path.resolve(containerDir), 'rootfs');
  try {
    mount('', rootfs, '', ['remount', 'bind', ...ROOTFS_MOUNT_FLAGS], '');
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EINVAL' || code === 'ENOENT') return false; // not a mount point / no rootfs
    throw err;
  }
}

/**
 * Makes the host's mount of a rootfs read-only (keeping nosuid,nodev). For a container in a user
 * namespace this is how its root is made read-only: the init, root only in that namespace, may
 * not remount a mount whose flags it would change (EPERM), and a flag set here is locked for it.
 */
export function makeRootfsReadonly(rootfs: string): void {
  mount('', rootfs, '', ['remount', 'bind', 'rdonly', ...ROOTFS_MOUNT_FLAGS], '');
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
