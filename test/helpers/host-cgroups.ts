// The host's cgroup layout as the kernel reports it (/proc/self/mountinfo), independently of the
// runtime's own detection, so tests can say which case they are in and build paths that hold on
// hybrid hosts (v1 controllers, cgroup2 at /sys/fs/cgroup/unified) and on pure v2 hosts (Debian
// 12's default: cgroup2 at /sys/fs/cgroup).

import fs from 'node:fs/promises';
import path from 'node:path';
import { cgroupHierarchies } from '../../cli/local-cluster/cgroup-hierarchies.js';

export interface HostCgroups {
  /** 'v2': only a cgroup2 hierarchy; 'hybrid': v1 controllers and a cgroup2 mount; 'v1': no cgroup2. */
  mode: 'v1' | 'v2' | 'hybrid';
  /** Where cgroup2 is mounted, if anywhere. */
  v2Root: string | undefined;
  /** v1 controller name (or "name=X" for a named hierarchy) -> its mount point (cpu and cpuacct may share one). */
  v1Roots: Map<string, string>;
  /** Controllers the cgroup2 root offers (cgroup.controllers), empty without cgroup2. */
  v2Controllers: Set<string>;
}

let cached: Promise<HostCgroups> | undefined;

export function hostCgroups(): Promise<HostCgroups> {
  cached ??= readHostCgroups();
  return cached;
}

async function readHostCgroups(): Promise<HostCgroups> {
  const v1Roots = new Map<string, string>();
  let v2Root: string | undefined;
  for (const line of (await fs.readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    const [before, after] = line.split(' - ');
    if (before === undefined || after === undefined) continue;
    const mountPoint = before.split(' ')[4];
    const [fsType, , superOptions] = after.split(' ');
    if (mountPoint === undefined) continue;
    if (fsType === 'cgroup2' && v2Root === undefined) v2Root = mountPoint;
    if (fsType === 'cgroup') {
      for (const option of (superOptions ?? '').split(',')) {
        // Named hierarchies (name=systemd) are kept under their full option: runc joins them too.
        if (!['rw', 'ro'].includes(option) && !v1Roots.has(option)) v1Roots.set(option, mountPoint);
      }
    }
  }
  const v2Controllers = new Set<string>();
  if (v2Root !== undefined) {
    const text = await fs.readFile(path.join(v2Root, 'cgroup.controllers'), 'utf8');
    for (const c of text.trim().split(/\s+/)) if (c !== '') v2Controllers.add(c);
  }
  const mode = v1Roots.has('memory') ? (v2Root === undefined ? 'v1' : 'hybrid') : 'v2';
  if (mode === 'v2' && v2Root === undefined) throw new Error('no cgroup v1 memory hierarchy and no cgroup2 mount in /proc/self/mountinfo');
  return { mode, v2Root, v1Roots, v2Controllers };
}

/**
 * The directory of a cgroup path (relative to the hierarchy root, as the runtime creates them)
 * that holds `controller`'s files: its v1 hierarchy when the controller is bound to v1, otherwise
 * the cgroup2 tree.
 */
export async function controllerDir(controller: string, cgroupPath: string): Promise<string> {
  const host = await hostCgroups();
  const v1 = host.v1Roots.get(controller);
  if (v1 !== undefined) return path.join(v1, cgroupPath);
  if (host.v2Root !== undefined) return path.join(host.v2Root, cgroupPath);
  throw new Error(`no cgroup hierarchy has the ${controller} controller`);
}

/** Reads one interface file of a cgroup, trimmed (e.g. controllerFile('pids', path, 'pids.max')). */
export async function readControllerFile(controller: string, cgroupPath: string, file: string): Promise<string> {
  return (await fs.readFile(path.join(await controllerDir(controller, cgroupPath), file), 'utf8')).trim();
}

/** Directories named `relative` under any hierarchy root (the roots the netns cluster's clean-up walks), deepest first (for leak checks and clean-up). */
export async function cgroupDirsUnder(relative: string): Promise<string[]> {
  const found: string[] = [];
  for (const root of await cgroupHierarchies()) {
    const top = path.join(root, relative);
    if (
      !(await fs.stat(top).then(
        (s) => s.isDirectory(),
        () => false,
      ))
    )
      continue;
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await fs.readdir(dir, { withFileTypes: true })) if (entry.isDirectory()) await walk(path.join(dir, entry.name));
      found.push(dir);
    };
    await walk(top);
  }
  return found;
}
