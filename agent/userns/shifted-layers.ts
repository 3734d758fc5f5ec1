// Image layers owned by a service's id range, for kernels (or addons) without idmapped mounts:
// each layer is copied once per range (cp -a keeps hard links, device nodes such as overlay
// whiteouts, and xattrs such as trusted.overlay.opaque) and every file's owner moved into the range.
// The copies are shared by every image and task using the same layer and range, and removed when
// the range is freed (removeShiftedLayers).
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { lchown, lstat, mkdir, readdir, rename, rm, chmod } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

import { errnoCode } from '../fs-errors.js';
import { lgetxattr, lsetxattr } from '../runtime/native.js';
import { IDS_PER_SERVICE, type ServiceIdRange } from './id-ranges.js';

const run = promisify(execFile);
const CAPABILITY_XATTR = 'security.capability';
/** VFS_CAP_REVISION_2 / _3 in the top byte of magic_etc; the low bit is "effective". */
const CAP_REVISION_MASK = 0xff00_0000;
const CAP_REVISION_2 = 0x0200_0000;
const CAP_REVISION_3 = 0x0300_0000;
/** Owners outside the container's ids (an image built with a wider map) become its nobody. */
const CONTAINER_NOBODY = 65_534;

/** <root>/<uidStart>-<gidStart>: the copies of one range. */
export function rangeCacheDir(root: string, range: ServiceIdRange): string {
  return join(root, `${range.uidStart}-${range.gidStart}`);
}

function cacheNameOf(layerDir: string): string {
  return createHash('sha256').update(resolve(layerDir)).digest('hex').slice(0, 40);
}

/**
 * A file capability as the kernel reads it from a file owned by the range: revision 3 with the
 * range's root as its rootid, since a revision-2 capability belongs to the host's root and is
 * ignored in the container. Pure; returns undefined for forms it does not know (left out).
 */
export function capabilityForRange(value: Buffer, rootUid: number): Buffer | undefined {
  if (value.length < 20) return undefined;
  const magic = value.readUInt32LE(0);
  const revision = (magic & CAP_REVISION_MASK) >>> 0;
  if (revision !== CAP_REVISION_2 && revision !== CAP_REVISION_3) return undefined;
  const out = Buffer.alloc(24);
  value.copy(out, 0, 0, 20);
  out.writeUInt32LE((CAP_REVISION_3 | (magic & 0x00ff_ffff)) >>> 0, 0);
  out.writeUInt32LE(rootUid, 20);
  return out;
}

/** Pure: a host owner moved into the range (ids beyond 16 bits become the container's nobody). */
export function shiftedId(id: number, start: number): number {
  return start + (id < IDS_PER_SERVICE ? id : CONTAINER_NOBODY);
}

/** Moves every file under `dir` into the range: owner, then the set-id bits and capability chown cleared. */
async function shiftOwners(dir: string, range: ServiceIdRange): Promise<void> {
  const seen = new Set<string>();
  const visit = async (path: string): Promise<void> => {
    const info = await lstat(path, { bigint: false });
    // A hard link is one inode: shifted once.
    const inode = `${info.dev}:${info.ino}`;
    if (!seen.has(inode)) {
      seen.add(inode);
      const symlink = info.isSymbolicLink();
      const capability = symlink ? undefined : lgetxattr(path, CAPABILITY_XATTR);
      await lchown(path, shiftedId(info.uid, range.uidStart), shiftedId(info.gid, range.gidStart));
      if (!symlink && (info.mode & 0o6000) !== 0) await chmod(path, info.mode & 0o7777);
      const shiftedCapability = capability === undefined ? undefined : capabilityForRange(capability, range.uidStart);
      if (shiftedCapability !== undefined) lsetxattr(path, CAPABILITY_XATTR, shiftedCapability);
    }
    if (info.isDirectory()) for (const name of await readdir(path)) await visit(join(path, name));
  };
  await visit(dir);
}

/** Copies and shifts one layer unless its copy exists; returns the copy's path. */
async function ensureShiftedLayer(layerDir: string, rangeDir: string, range: ServiceIdRange): Promise<string> {
  const target = join(rangeDir, cacheNameOf(layerDir));
  const existing = await lstat(target).catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  });
  if (existing?.isDirectory()) return target;
  const staging = `${target}.tmp-${randomBytes(6).toString('hex')}`;
  try {
    await run('cp', ['-a', '--reflink=auto', '--', resolve(layerDir), staging], { maxBuffer: 1024 * 1024 });
    await shiftOwners(staging, range);
    await rename(staging, target);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    // Another task of the range finished the same copy first.
    if (errnoCode(err) === 'ENOTEMPTY' || errnoCode(err) === 'EEXIST') return target;
    throw new Error(`shifting layer ${layerDir} into ids ${range.uidStart}+: ${(err as Error).message}`);
  }
  return target;
}

/**
 * The range's copies of `layerDirs` (same order), made where missing, under <root>/<range>/.
 * Concurrent calls for one range and layer share the work (`inflight`).
 */
export class ShiftedLayers {
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(private readonly root: string) {}

  async layersFor(layerDirs: readonly string[], range: ServiceIdRange): Promise<string[]> {
    const rangeDir = rangeCacheDir(this.root, range);
    // Root only: these are image files, and nobody else needs a way to them.
    await mkdir(rangeDir, { recursive: true, mode: 0o700 });
    const out: string[] = [];
    for (const layerDir of layerDirs) {
      const key = `${rangeDir}\0${resolve(layerDir)}`;
      let pending = this.inflight.get(key);
      if (pending === undefined) {
        pending = ensureShiftedLayer(layerDir, rangeDir, range).finally(() => this.inflight.delete(key));
        this.inflight.set(key, pending);
      }
      out.push(await pending);
    }
    return out;
  }

  /** Removes a freed range's copies. */
  async remove(range: ServiceIdRange): Promise<void> {
    await rm(rangeCacheDir(this.root, range), { recursive: true, force: true });
  }
}
