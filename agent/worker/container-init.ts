// `init: true`: a minimal init runs as the container's PID 1, reaps the zombies orphaned processes
// leave and forwards signals to the service's process (which, as PID 1 itself, would ignore a
// SIGTERM it has no handler for). The init is tini, statically linked (Debian package tini,
// installed by deploy/install-deps.sh), copied into the container's rootfs — the image needs
// nothing of its own, busybox or otherwise.
import { constants } from 'node:fs';
import { access, copyFile, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** Where the init lives inside the container: the rootfs's top directory is always a real one. */
export const CONTAINER_INIT_PATH = '/.tessera-init';

export const DEFAULT_INIT_BINARY = '/usr/bin/tini-static';

/** The container's argv with the init in front: `--` ends the init's own options. Pure. */
export function withInit(args: readonly string[]): string[] {
  return [CONTAINER_INIT_PATH, '--', ...args];
}

/** Copies the init binary into the rootfs (replacing whatever the image has at that path, never through a symlink). */
export async function installInit(rootfs: string, binary = DEFAULT_INIT_BINARY): Promise<void> {
  try {
    await access(binary, constants.X_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'it is missing' : `it cannot be run (${code ?? (err as Error).message})`;
    throw new Error(`init: true needs ${binary} on the node (Debian package tini); ${why}`, { cause: err });
  }
  const target = join(rootfs, CONTAINER_INIT_PATH);
  await rm(target, { force: true, recursive: true });
  await copyFile(binary, target, constants.COPYFILE_EXCL);
}
