// Everything a task's container mounts besides its rootfs: its secrets and configs (a tmpfs of its
// own under the node's runtime root) and the service's volumes, binds and tmpfs mounts. Prepared
// after the rootfs is mounted (copy-up reads the image there), released after the container is gone.
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import type { FileLookup } from '../../common/dispatcher/stack-files.js';
import type { Task } from '../../common/resources/types.js';
import { nodeVolumes } from '../volumes/node-volumes.js';
import { planVolumeMounts } from '../volumes/volume-plan.js';
import { orderMounts, type OciMount } from './container-config.js';
import { planTaskFiles, removeTaskFiles, taskFilesDir, writeTaskFiles, type TaskFile } from './task-files.js';
import { unlessAbsent } from '../fs-errors.js';
import { hostIdOf, type ServiceIdRange } from '../userns/id-ranges.js';
import { adoptNewVolumeData, claimVolumeData, HOST_IDS } from '../userns/volume-ownership.js';

export interface TaskMountsContext {
  task: Task;
  containerId: string;
  /** The container's bundle directory (anonymous volumes live in it). */
  containerDir: string;
  /** <dataRoot>/containers: the default runtime and volume roots are its siblings. */
  containersDir: string;
  rootfs: string;
  files?: FileLookup;
  /** Where per-container files tmpfs mounts go; default <dataRoot>/run. */
  filesRoot?: string;
  /** Where named volumes live; default <dataRoot>/volumes. */
  volumesDir?: string;
  /** The service's id range when the container has a user namespace: files and volumes are owned in it. */
  ids?: ServiceIdRange;
}

export function defaultFilesRoot(containersDir: string): string {
  return join(dirname(containersDir), 'run');
}

export function defaultVolumesDir(containersDir: string): string {
  return join(dirname(containersDir), 'volumes');
}

/** A secret's or config's owner as the host sees it in the range; an id the range cannot hold names the file. */
function ownerInRange(file: TaskFile, ids: ServiceIdRange): { uid: number; gid: number } {
  try {
    return { uid: hostIdOf(file.uid, ids.uidStart), gid: hostIdOf(file.gid, ids.gidStart) };
  } catch (err) {
    throw new Error(`${file.kind.toLowerCase()} "${file.name}" at ${file.target}: owner ${file.uid}:${file.gid}: ${(err as Error).message} (userns: auto)`, {
      cause: err,
    });
  }
}

/** The container's extra mounts, in mount order. Throws a message naming what is wrong. */
export async function prepareTaskMounts(ctx: TaskMountsContext): Promise<OciMount[]> {
  const spec = ctx.task.spec.spec;
  const stack = ctx.task.spec.serviceStack;
  if ((spec.mounts ?? []).length === 0 && (spec.secrets ?? []).length === 0 && (spec.configs ?? []).length === 0) return [];
  const planned = planTaskFiles(spec, stack, ctx.files);
  const { ids } = ctx;
  // Owners are the container's ids: seen from the host they lie in the service's range.
  const filesPlan = ids ? { ...planned, files: planned.files.map((f) => ({ ...f, ...ownerInRange(f, ids) })) } : planned;
  const actions = planVolumeMounts(spec.mounts ?? [], {
    taskStack: stack,
    volumesDir: ctx.volumesDir ?? defaultVolumesDir(ctx.containersDir),
    anonymousDir: join(ctx.containerDir, 'volumes'),
    ...(ctx.files ? { files: ctx.files } : {}),
  });
  const owner = ids ?? HOST_IDS;
  const dataDirs = actions.flatMap((a) => (a.type === 'named' || a.type === 'anonymous' ? [a.dataDir] : []));
  for (const dir of dataDirs) await claimVolumeData(dir, owner);
  const volumeMounts = await nodeVolumes.prepare(ctx.containerId, actions, ctx.rootfs);
  for (const dir of dataDirs) await adoptNewVolumeData(dir, owner);
  const fileMounts = await writeTaskFiles(filesPlan, taskFilesDir(ctx.filesRoot ?? defaultFilesRoot(ctx.containersDir), ctx.containerId));
  return orderMounts([...volumeMounts, ...fileMounts]);
}

/** After the container is gone: its files tmpfs is unmounted and removed, its volume mounts released. */
export async function releaseTaskMounts(containerId: string, containersDir: string, filesRoot?: string): Promise<void> {
  await nodeVolumes.release(containerId);
  await removeTaskFiles(taskFilesDir(filesRoot ?? defaultFilesRoot(containersDir), containerId));
}

/**
 * Files tmpfs mounts an earlier tsd left for containers that are not kept (their tasks are no
 * longer assigned here): unmounted and removed, so no secret outlives its container on the node.
 */
export async function sweepTaskFiles(containersDir: string, keep: ReadonlySet<string>, filesRoot?: string): Promise<string[]> {
  const tasksDir = join(filesRoot ?? defaultFilesRoot(containersDir), 'tasks');
  // No tasks dir: no container ever had secrets or configs here.
  const entries = await unlessAbsent(readdir(tasksDir), [] as string[]);
  const removed: string[] = [];
  for (const id of entries) {
    if (keep.has(id)) continue;
    await removeTaskFiles(taskFilesDir(filesRoot ?? defaultFilesRoot(containersDir), id));
    removed.push(id);
  }
  return removed;
}
