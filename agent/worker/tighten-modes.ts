// At tsd's start: the worker's directories get the modes this version makes, also when an older
// tsd made them (bundles and logs 0755, config.json and logs 0644, rootfs mounts without nosuid),
// so a container it takes over is as closed to other host users as a new one.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

import { hardenRootfsMount } from '../runtime/rootfs.js';
import { ensureDirMode, ensureRootfsParent, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, tightenIfPresent } from '../file-modes.js';

export interface WorkerDirs {
  containersDir: string;
  logsDir: string;
}

/**
 * Makes both directories (if missing) with their modes, and tightens what is in them. A rootfs
 * that cannot be remounted nosuid,nodev is logged, not fatal: its container is unchanged by that.
 */
export async function tightenWorkerModes(dirs: WorkerDirs, log: (message: string) => void): Promise<void> {
  await ensureRootfsParent(dirs.containersDir);
  for (const bundle of await readdir(dirs.containersDir, { withFileTypes: true })) {
    if (!bundle.isDirectory()) continue;
    const dir = join(dirs.containersDir, bundle.name);
    await ensureRootfsParent(dir);
    await tightenIfPresent(join(dir, 'config.json'), PRIVATE_FILE_MODE);
    try {
      hardenRootfsMount(dir);
    } catch (err) {
      log(`container ${bundle.name}: its rootfs could not be remounted nosuid,nodev: ${(err as Error).message}`);
    }
  }
  await ensureDirMode(dirs.logsDir, PRIVATE_DIR_MODE);
  for (const file of await readdir(dirs.logsDir, { withFileTypes: true })) {
    if (file.isFile()) await tightenIfPresent(join(dirs.logsDir, file.name), PRIVATE_FILE_MODE);
  }
}
