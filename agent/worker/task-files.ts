// Secrets and configs inside a task's container, never on the node's disk: the agent holds them in
// memory (DeliveredFiles) and writes them only into a tmpfs of the container's own, mounted by us on
// the host at <filesRoot>/<container id>/files and removed with the container. Secrets whose
// target lies under /run/secrets share one directory bound at /run/secrets; every other secret or
// config is bound file by file at its target. Modes default to 0444, owners to root (Swarm's).
import { chmod, chown, mkdir, rm, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';

import type { FileLookup } from '../../common/dispatcher/stack-files.js';
import type { FileReference, ServiceSpec } from '../../common/resources/types.js';
import { mount, umount } from '../runtime/native.js';
import type { OciMount } from './container-config.js';

export const SECRETS_DIR = '/run/secrets';
const DEFAULT_MODE = 0o444;

export interface TaskFile {
  kind: 'Secret' | 'Config';
  /** The object's name, for messages. */
  name: string;
  /** Absolute path inside the container. */
  target: string;
  /** Path relative to the files tmpfs. */
  hostPath: string;
  uid: number;
  gid: number;
  mode: number;
  data: Buffer;
}

export interface TaskFilesPlan {
  files: TaskFile[];
  /** Whether a directory of the tmpfs is bound at /run/secrets. */
  secretsDir: boolean;
}

/** An absolute, normalised path without "." or ".." segments; throws naming the field otherwise. */
function containerPath(raw: string, base: string, field: string): string {
  const absolute = raw.startsWith('/') ? raw : `${base}/${raw}`;
  const segments = absolute.split('/').filter((s) => s !== '');
  if (segments.length === 0 || segments.some((s) => s === '.' || s === '..'))
    throw new Error(`${field}: target ${JSON.stringify(raw)} is not a usable file path`);
  return `/${segments.join('/')}`;
}

/**
 * Pure: where each secret and config of the spec goes, with its content. Throws naming the object
 * when it was not delivered to this node (it does not exist, or the manager did not send it).
 */
export function planTaskFiles(spec: ServiceSpec, taskStack: string, files: FileLookup | undefined): TaskFilesPlan {
  const out: TaskFile[] = [];
  const targets = new Set<string>();
  let secretsDir = false;
  const add = (kind: 'Secret' | 'Config', ref: FileReference, index: number) => {
    const field = `${kind === 'Secret' ? 'secrets' : 'configs'}[${index}] (${ref.source})`;
    const delivered = files?.resolve(kind, taskStack, ref.source);
    if (!delivered) throw new Error(`${kind.toLowerCase()} "${ref.source}" was not delivered to this node (does it still exist?)`);
    const target = containerPath(ref.target, kind === 'Secret' ? SECRETS_DIR : '', field);
    if (targets.has(target)) throw new Error(`${field}: two secrets or configs have the target ${target}`);
    targets.add(target);
    const underSecrets = kind === 'Secret' && target.startsWith(`${SECRETS_DIR}/`);
    if (underSecrets) secretsDir = true;
    out.push({
      kind,
      name: ref.source,
      target,
      hostPath: underSecrets ? `secrets${target.slice(SECRETS_DIR.length)}` : `single/${out.length}`,
      uid: Number(ref.uid ?? '0'),
      gid: Number(ref.gid ?? '0'),
      mode: ref.mode ?? DEFAULT_MODE,
      // A copy: the delivered bytes are overwritten when the manager withdraws them.
      data: Buffer.from(delivered.data),
    });
  };
  (spec.secrets ?? []).forEach((ref, i) => add('Secret', ref, i));
  (spec.configs ?? []).forEach((ref, i) => add('Config', ref, i));
  return { files: out, secretsDir };
}

/**
 * The binds' options. nosuid,nodev,noexec are the tmpfs's own (a bind has them anyway); named, the
 * read-only remount keeps them, which a container in a user namespace must: it may not clear flags
 * the mount it binds from has (EPERM).
 */
const FILE_BIND_OPTIONS = ['rbind', 'rprivate', 'ro', 'nosuid', 'nodev', 'noexec'];

/** Pure: the container's bind mounts of a plan whose tmpfs is at `filesDir`. */
export function taskFileMounts(plan: TaskFilesPlan, filesDir: string): OciMount[] {
  const mounts: OciMount[] = [];
  if (plan.secretsDir) mounts.push({ destination: SECRETS_DIR, type: 'bind', source: join(filesDir, 'secrets'), options: [...FILE_BIND_OPTIONS] });
  for (const file of plan.files) {
    if (file.hostPath.startsWith('secrets/')) continue;
    mounts.push({ destination: file.target, type: 'bind', source: join(filesDir, file.hostPath), options: [...FILE_BIND_OPTIONS] });
  }
  return mounts;
}

/** The files directory of one container under the node's runtime root. */
export function taskFilesDir(filesRoot: string, containerId: string): string {
  return join(filesRoot, 'tasks', containerId, 'files');
}

/**
 * Mounts a tmpfs at `filesDir` (nothing written here reaches a disk) and writes the plan's files
 * with their modes and owners. Returns the container's mounts. On failure removes what it made.
 */
export async function writeTaskFiles(plan: TaskFilesPlan, filesDir: string): Promise<OciMount[]> {
  if (plan.files.length === 0) return [];
  await mkdir(filesDir, { recursive: true, mode: 0o700 });
  const bytes = plan.files.reduce((n, f) => n + f.data.length, 0);
  // Room for the data plus inode slack; noexec/nosuid/nodev: these are data files only.
  mount('tmpfs', filesDir, 'tmpfs', ['nosuid', 'nodev', 'noexec'], `mode=0755,size=${bytes + 1024 * 1024}`);
  try {
    if (plan.secretsDir) await mkdir(join(filesDir, 'secrets'), { mode: 0o755 });
    for (const file of plan.files) {
      const path = join(filesDir, file.hostPath);
      await mkdir(posix.dirname(path), { recursive: true, mode: 0o755 });
      await writeFile(path, file.data, { mode: 0o600 });
      await chown(path, file.uid, file.gid);
      await chmod(path, file.mode);
    }
  } catch (err) {
    await removeTaskFiles(filesDir);
    throw err;
  }
  return taskFileMounts(plan, filesDir);
}

/** Unmounts the container's files tmpfs (whatever it held is gone with it) and removes its directory. */
export async function removeTaskFiles(filesDir: string): Promise<void> {
  try {
    umount(filesDir, false);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EBUSY') umount(filesDir, true);
    else if (code !== 'EINVAL' && code !== 'ENOENT') throw err;
  }
  // <filesRoot>/tasks/<id>: the mount point and its parent, both empty on disk.
  await rm(posix.dirname(filesDir), { recursive: true, force: true });
}
