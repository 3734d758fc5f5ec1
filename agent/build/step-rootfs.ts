// The root file system one build step works on: the stage's layers read-only below a fresh upper
// directory (overlayfs, as a task's container gets), so whatever the step writes — a RUN's
// container or a COPY from the host side — lands in the upper directory, which becomes its layer.
import { lstat, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { mountOverlayRootfs, unmountRootfs } from '../runtime/rootfs.js';
import { unlessAbsent } from '../fs-errors.js';

/** Mount points the runtime makes at the top of a rootfs that lacks them (spec.ts DEFAULT_MOUNTS). */
const RUNTIME_MOUNT_POINTS = ['proc', 'dev', 'sys'];

export interface StepRootfs {
  /** The step's directory: rootfs/, upper/, work/ and, for a RUN, the bundle's config.json. */
  dir: string;
  rootfs: string;
  upper: string;
  /** Top-level mount points the runtime will make because the layers have none (left out of the layer). */
  mountPoints: Set<string>;
}

/**
 * Mounts `layerDirs` (bottom first) with a fresh upper at <dir>/rootfs. A stage without layers
 * (FROM scratch) gets `emptyLower`, an empty directory, as its only lower layer.
 */
export async function mountStepRootfs(layerDirs: readonly string[], dir: string, emptyLower: string): Promise<StepRootfs> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (layerDirs.length === 0) await mkdir(emptyLower, { recursive: true, mode: 0o755 });
  const rootfs = await mountOverlayRootfs(layerDirs.length === 0 ? [emptyLower] : [...layerDirs], dir);
  const mountPoints = new Set<string>();
  for (const name of RUNTIME_MOUNT_POINTS) {
    if ((await unlessAbsent(lstat(join(rootfs, name)), undefined)) === undefined) mountPoints.add(name);
  }
  return { dir, rootfs, upper: join(dir, 'upper'), mountPoints };
}

/** Unmounts the rootfs (the upper dir stays, for the layer diff). */
export async function unmountStepRootfs(step: StepRootfs): Promise<void> {
  await unmountRootfs(step.dir);
}

/** Unmounts (if still mounted) and removes everything of the step. */
export async function removeStepRootfs(step: StepRootfs): Promise<void> {
  await unmountRootfs(step.dir);
  await rm(step.dir, { recursive: true, force: true });
}

/** True when the step wrote nothing (mount points the runtime made aside). */
export async function upperIsEmpty(step: StepRootfs): Promise<boolean> {
  for (const name of await readdir(step.upper)) {
    if (!step.mountPoints.has(name)) return false;
    if ((await readdir(join(step.upper, name))).length > 0) return false;
  }
  return true;
}
