// The node's side of mounts: creates named volume directories on first use (mounting their driver
// options, if any, while a container uses them), fills a new empty volume with the image's content
// at the target (Docker's copy-up, unless noCopy), checks or creates bind sources, and returns the
// runtime's mount entries. Deleting a Volume object removes nothing here: like Swarm's local
// volumes, the data stays on the node and a Volume of the same name finds it again.
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, realpath, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';

import { mount, umount } from '../runtime/native.js';
import type { OciMount } from '../worker/container-config.js';
import { driverMount, type MountAction } from './volume-plan.js';
import { exists, unlessAbsent } from '../fs-errors.js';
import { PRIVATE_DIR_MODE } from '../file-modes.js';

const run = promisify(execFile);
/** Beside _data, never inside it: the volume's content was initialised (copied up or used). */
const INITIALISED = 'initialised';

/** After umount failed: busy is detached lazily, not mounted (EINVAL) or gone (ENOENT) is done; anything else is thrown. */
function unmountFailed(err: unknown, point: string): void {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EBUSY') umount(point, true);
  else if (code !== 'EINVAL' && code !== 'ENOENT') throw err;
}

/** Mount points of this mount namespace, from /proc/self/mountinfo (octal escapes decoded). */
async function mountPoints(): Promise<Set<string>> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return new Set(
    text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => (l.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))),
  );
}

/** The image's directory at `target`, when it exists inside the rootfs (symlinks may not lead out). */
async function imageDirAt(rootfs: string, target: string): Promise<string | undefined> {
  const path = await unlessAbsent(realpath(join(rootfs, target)), undefined);
  if (!path) return undefined;
  const root = await realpath(rootfs);
  const rel = relative(root, path);
  if (rel.startsWith('..')) return undefined;
  const st = await unlessAbsent(stat(path), undefined);
  return st?.isDirectory() ? path : undefined;
}

/**
 * Makes a volume's _data directory. Those above it (the volume's, its stack's, volumes/, or the
 * container's volumes/) are made root-only: a container can put a setuid binary in its volume, and
 * _data itself is the volume's root inside the container, so it stays 0755 for non-root users there.
 */
async function makeDataDir(dataDir: string): Promise<void> {
  await mkdir(join(dataDir, '..'), { recursive: true, mode: PRIVATE_DIR_MODE });
  await mkdir(dataDir, { recursive: true, mode: 0o755 });
}

async function copyUp(rootfs: string, target: string, dataDir: string, marker: string): Promise<void> {
  if (await exists(marker)) return;
  if ((await readdir(dataDir)).length === 0) {
    const source = await imageDirAt(rootfs, target);
    // cp -a keeps owners, modes, links and times, as Docker's copy does.
    if (source && (await readdir(source)).length > 0) await run('cp', ['-a', `${source}/.`, `${dataDir}/`]);
  }
  await writeFile(marker, '');
}

export class NodeVolumes {
  /** Volumes mounted from driver options: data dir → containers using it. */
  private readonly users = new Map<string, Set<string>>();

  /**
   * Makes every action ready for `containerId` whose rootfs is mounted at `rootfs`; returns the
   * runtime mounts. On failure, releases what it took and throws a message naming the mount.
   */
  async prepare(containerId: string, actions: readonly MountAction[], rootfs: string): Promise<OciMount[]> {
    const mounts: OciMount[] = [];
    try {
      for (const action of actions) mounts.push(await this.prepareOne(containerId, action, rootfs));
    } catch (err) {
      await this.release(containerId);
      throw err;
    }
    return mounts;
  }

  /** The container is gone: driver-option mounts no other container uses are unmounted (their data stays). */
  async release(containerId: string): Promise<void> {
    for (const [dataDir, users] of this.users) {
      if (!users.delete(containerId) || users.size > 0) continue;
      this.users.delete(dataDir);
      try {
        umount(dataDir, false);
      } catch (err) {
        unmountFailed(err, dataDir);
      }
    }
  }

  private async prepareOne(containerId: string, action: MountAction, rootfs: string): Promise<OciMount> {
    const ro = action.readOnly ? ['ro'] : [];
    switch (action.type) {
      case 'tmpfs': {
        const data = [
          ...(action.sizeBytes !== undefined ? [`size=${action.sizeBytes}`] : []),
          ...(action.mode !== undefined ? [`mode=${action.mode.toString(8)}`] : []),
        ];
        return { destination: action.destination, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', ...ro, ...data] };
      }
      case 'bind': {
        if (!(await exists(action.source))) {
          if (!action.createHostPath)
            throw new Error(
              `bind mount at ${action.destination}: source ${action.source} does not exist on this node (create it, or set bind.create_host_path)`,
            );
          await mkdir(action.source, { recursive: true });
        }
        return { destination: action.destination, type: 'bind', source: action.source, options: ['rbind', action.propagation ?? 'rprivate', ...ro] };
      }
      case 'anonymous': {
        await makeDataDir(action.dataDir);
        if (action.copy) await copyUp(rootfs, action.destination, action.dataDir, join(action.dataDir, '..', INITIALISED));
        return { destination: action.destination, type: 'bind', source: action.dataDir, options: ['rbind', 'rprivate', ...ro] };
      }
      case 'named': {
        await makeDataDir(action.dataDir);
        if (action.driverOpts) {
          const users = this.users.get(action.dataDir) ?? new Set<string>();
          if (users.size === 0 && !(await mountPoints()).has(action.dataDir)) {
            const m = driverMount(action.name, action.driverOpts);
            try {
              mount(m.source, action.dataDir, m.fstype, m.bind ? ['bind'] : [], m.data);
            } catch (err) {
              throw new Error(`volume ${action.name}: mounting its driver options failed: ${(err as Error).message}`);
            }
          }
          users.add(containerId);
          this.users.set(action.dataDir, users);
        }
        if (action.copy) await copyUp(rootfs, action.destination, action.dataDir, join(action.volumeDir, INITIALISED));
        let source = action.dataDir;
        if (action.subpath !== undefined) {
          source = join(action.dataDir, action.subpath);
          const real = await unlessAbsent(realpath(source), undefined);
          if (!real) throw new Error(`volume ${action.name}: subpath ${action.subpath} does not exist in the volume`);
          if (relative(await realpath(action.dataDir), real).startsWith('..'))
            throw new Error(`volume ${action.name}: subpath ${action.subpath} leads out of the volume`);
          source = real;
        }
        return { destination: action.destination, type: 'bind', source, options: ['rbind', 'rprivate', ...ro] };
      }
    }
  }
}

/** One per agent process: mounts of volumes are node-wide state. */
export const nodeVolumes = new NodeVolumes();

/** Unmounts every volume mounted from driver options under `volumesDir` (no tsd runs: `tsd cleanup`). The data stays. */
export async function sweepVolumeMounts(volumesDir: string): Promise<string[]> {
  const points = [...(await mountPoints())]
    .filter((p) => p.startsWith(`${volumesDir}/`))
    .sort()
    .reverse();
  for (const point of points) {
    try {
      umount(point, false);
    } catch (err) {
      unmountFailed(err, point);
    }
  }
  return points;
}
