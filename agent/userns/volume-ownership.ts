// Named and anonymous volume data under a service's id range. A volume directory records whose ids
// its files carry (<volume dir>/userns-ids: "uidStart gidStart"; absent = the host's, 0 0). When a
// task whose ids differ mounts it, every owner is moved once from the recorded range to the task's
// (the host's ids count as the range starting at 0): a volume follows the service's range, at the
// cost of one walk when the range changes. Two services sharing a volume with different ranges
// take it in turns; the one mounting it last owns it.
import { lchown, lstat, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import { unlessAbsent } from '../fs-errors.js';
import { IDS_PER_SERVICE } from './id-ranges.js';

const MARKER = 'userns-ids';
/** A file's id outside the recorded range becomes the new range's nobody. */
const CONTAINER_NOBODY = 65_534;

export interface IdBase {
  uidStart: number;
  gidStart: number;
}
export const HOST_IDS: IdBase = { uidStart: 0, gidStart: 0 };

/** Pure: an id of the range starting at `from` moved to the one starting at `to`. */
export function movedId(id: number, from: number, to: number): number {
  const offset = id - from;
  return to + (offset >= 0 && offset < IDS_PER_SERVICE ? offset : CONTAINER_NOBODY);
}

/** Pure: parses a marker's text; undefined when malformed (treated as the host's ids by the caller). */
export function parseIdBase(text: string): IdBase | undefined {
  const match = /^(\d{1,10}) (\d{1,10})\n?$/.exec(text);
  if (!match) return undefined;
  return { uidStart: Number(match[1]), gidStart: Number(match[2]) };
}

async function moveOwners(dir: string, from: IdBase, to: IdBase): Promise<void> {
  const seen = new Set<string>();
  const visit = async (path: string): Promise<void> => {
    const info = await lstat(path);
    const inode = `${info.dev}:${info.ino}`;
    if (seen.has(inode)) return;
    seen.add(inode);
    await lchown(path, movedId(info.uid, from.uidStart, to.uidStart), movedId(info.gid, from.gidStart, to.gidStart));
    if (info.isDirectory()) for (const name of await readdir(path)) await visit(join(path, name));
  };
  await visit(dir);
}

function markerOf(dataDir: string): string {
  return join(dirname(dataDir), MARKER);
}

async function recordIds(dataDir: string, ids: IdBase): Promise<void> {
  const markerPath = markerOf(dataDir);
  const tmp = `${markerPath}.tmp`;
  await writeFile(tmp, `${ids.uidStart} ${ids.gidStart}\n`, { mode: 0o600 });
  await rename(tmp, markerPath);
}

/**
 * Before the volume is prepared for a task: data already there is moved to the ids of `to` unless it
 * carries them. A data directory that does not exist yet is left to adoptNewVolumeData.
 */
export async function claimVolumeData(dataDir: string, to: IdBase): Promise<void> {
  if ((await unlessAbsent(lstat(dataDir), undefined)) === undefined) return;
  const text = await unlessAbsent(readFile(markerOf(dataDir), 'utf8'), undefined);
  const from = text === undefined ? HOST_IDS : (parseIdBase(text) ?? HOST_IDS);
  if (from.uidStart === to.uidStart && from.gidStart === to.gidStart) return;
  try {
    await moveOwners(dataDir, from, to);
  } catch (err) {
    throw new Error(`volume data ${dataDir}: moving its owners to ids ${to.uidStart}/${to.gidStart}: ${(err as Error).message}`, { cause: err });
  }
  await recordIds(dataDir, to);
}

/**
 * After the volume was prepared: a data directory made for this task (no record yet) is recorded as
 * the range's. Its content, copied from the task's rootfs, has the range's ids already; only the
 * directory itself, when host root made it empty, is given to the container's root.
 */
export async function adoptNewVolumeData(dataDir: string, to: IdBase): Promise<void> {
  if (to.uidStart === HOST_IDS.uidStart && to.gidStart === HOST_IDS.gidStart) return;
  if ((await unlessAbsent(readFile(markerOf(dataDir), 'utf8'), undefined)) !== undefined) return;
  const info = await lstat(dataDir);
  if (info.uid === 0 && info.gid === 0) await lchown(dataDir, to.uidStart, to.gidStart);
  await recordIds(dataDir, to);
}
