// Modes of what tsd keeps on the node's disk. Nothing under the data root is for other host users:
// a container's environment (its bundle's config.json), its output, the runtime's records and a
// setuid binary a container made in its root file system must be out of their reach (a host user
// running a container's setuid-root binary was Docker's CVE-2021-41091).
import { chmod, chown, mkdir, open } from 'node:fs/promises';

import { unlessAbsent } from './fs-errors.js';

/** The data root: other users may pass through (to a socket path, say), but not list it. */
export const DATA_ROOT_MODE = 0o711;
/** State directories (images, logs, runtime, network, volumes, raft, ...): root only. */
export const PRIVATE_DIR_MODE = 0o700;
/** Files with anything private in them (config.json, logs, runtime state, tsd.log): root only. */
export const PRIVATE_FILE_MODE = 0o600;
/**
 * The directories on the way to container root file systems (<data-root>/containers and each
 * container's bundle directory), owned by root:root, as Docker lays out its own: root and group
 * root may pass, nobody else reaches a rootfs.
 */
export const ROOTFS_PARENT_MODE = 0o710;

/**
 * Makes `dir` (missing parents get the same mode) and gives it `mode` also when it was there
 * already: directories an older tsd made are 0755.
 */
export async function ensureDirMode(dir: string, mode: number): Promise<void> {
  await mkdir(dir, { recursive: true, mode });
  await chmod(dir, mode);
}

/**
 * A directory on the way to container root file systems: ROOTFS_PARENT_MODE, owned by root:root,
 * so a group inherited from a set-group-id parent directory gives nobody a way in.
 */
export async function ensureRootfsParent(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: ROOTFS_PARENT_MODE });
  await chown(dir, 0, 0);
  await chmod(dir, ROOTFS_PARENT_MODE);
}

/** Gives `path` `mode` when it exists; an absent path is fine (nothing to tighten). */
export async function tightenIfPresent(path: string, mode: number): Promise<void> {
  await unlessAbsent(chmod(path, mode), undefined);
}

/**
 * Writes `data` to a file only root reads. A file that existed keeps its inode: its mode is
 * narrowed before the new content goes in (open's mode applies only to a file it creates).
 */
export async function writePrivateFile(path: string, data: string): Promise<void> {
  const file = await open(path, 'w', PRIVATE_FILE_MODE);
  try {
    await file.chmod(PRIVATE_FILE_MODE);
    await file.writeFile(data);
  } finally {
    await file.close();
  }
}

/**
 * Makes `path` exist as a private file without changing its content: a log another process then
 * opens with O_CREAT|O_APPEND keeps this mode (the mode of open(2) applies only to a new file).
 */
export async function createPrivateFile(path: string): Promise<void> {
  const file = await open(path, 'a', PRIVATE_FILE_MODE);
  try {
    await file.chmod(PRIVATE_FILE_MODE);
  } finally {
    await file.close();
  }
}
