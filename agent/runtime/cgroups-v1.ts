// cgroup v1 hierarchies: one directory per controller under the cgroup mount root.
// The container init writes itself into every cgroup.procs returned by create() before execve.

import fs from 'node:fs/promises';
import path from 'node:path';
import type { OciSpec } from './types.js';

type Resources = NonNullable<NonNullable<OciSpec['linux']>['resources']>;

/** Controllers a container joins; cpuset is left out (it needs cpus/mems copied down). */
const CONTROLLERS = ['memory', 'pids', 'cpu', 'cpuacct'] as const;

export type CgroupVersion = 'v1' | 'v2';

export async function detectCgroupVersion(mountRoot: string): Promise<CgroupVersion> {
  if (await exists(path.join(mountRoot, 'cgroup.controllers'))) return 'v2';
  if (await exists(path.join(mountRoot, 'memory', 'memory.limit_in_bytes'))) return 'v1';
  throw new Error(`no cgroup v1 or v2 hierarchy found under ${mountRoot}`);
}

/** What create() made: remove() needs exactly this (it is kept in the container's state file). */
export interface CgroupRecord {
  /** One directory per controller hierarchy, e.g. /sys/fs/cgroup/memory/tessera/ctr1. */
  dirs: string[];
  /** Directories create() made itself (leaf and any new parents), deepest last. */
  createdDirs: string[];
}

/** Checks a cgroupsPath and returns it relative to each hierarchy root. */
export function normalizeCgroupsPath(cgroupsPath: string, field: string): string {
  const parts = cgroupsPath.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0) throw new Error(`${field}: must name a cgroup below the root`);
  for (const p of parts) {
    if (p === '..') throw new Error(`${field}: must not contain '..'`);
    if (p.includes(':')) throw new Error(`${field}: systemd-style "slice:prefix:name" paths are not supported`);
  }
  return parts.join('/');
}

export class CgroupsV1 {
  constructor(private readonly mountRoot: string) {}

  async create(relativePath: string, resources: Resources | undefined): Promise<CgroupRecord> {
    const record: CgroupRecord = { dirs: [], createdDirs: [] };
    try {
      const hierarchies = await this.hierarchies();
      for (const hierarchy of hierarchies) {
        const dir = path.join(hierarchy, relativePath);
        await this.mkdirRecorded(hierarchy, relativePath, record);
        record.dirs.push(dir);
      }
      await this.applyLimits(record.dirs, resources);
      return record;
    } catch (err) {
      await this.remove(record);
      throw err;
    }
  }

  /** The cgroup.procs files the init writes "0" into. */
  procsFiles(record: CgroupRecord): string[] {
    return record.dirs.map((d) => path.join(d, 'cgroup.procs'));
  }

  /** True when the kernel OOM killer killed a process of this cgroup. */
  async oomKilled(record: CgroupRecord): Promise<boolean> {
    for (const dir of record.dirs) {
      const text = await fs.readFile(path.join(dir, 'memory.oom_control'), 'utf8').catch(() => undefined);
      if (text === undefined) continue;
      const match = /^oom_kill (\d+)$/m.exec(text);
      if (match !== null) return Number(match[1]) > 0;
    }
    return false;
  }

  /** Removes the created directories; retries while the kernel drains exiting tasks. */
  async remove(record: CgroupRecord): Promise<void> {
    const failures: string[] = [];
    const leaves = new Set(record.dirs);
    for (const dir of [...record.createdDirs].reverse()) {
      try {
        await rmdirDraining(dir, leaves.has(dir));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // A parent we made may now be shared with another container: leave it to the last one.
        if (!leaves.has(dir) && (code === 'EBUSY' || code === 'ENOTEMPTY')) continue;
        failures.push(`${dir}: ${(err as Error).message}`);
      }
    }
    if (failures.length > 0) throw new Error(`could not remove cgroup(s): ${failures.join('; ')}`);
  }

  private async hierarchies(): Promise<string[]> {
    const seen = new Set<string>();
    for (const controller of CONTROLLERS) {
      const link = path.join(this.mountRoot, controller);
      // cpu and cpuacct are often one hierarchy ("cpu,cpuacct") reached through symlinks.
      const real = await fs.realpath(link).catch(() => undefined);
      if (real === undefined) {
        if (controller === 'memory' || controller === 'pids') throw new Error(`cgroup v1 controller '${controller}' is not mounted at ${link}`);
        continue;
      }
      seen.add(real);
    }
    return [...seen];
  }

  private async mkdirRecorded(hierarchy: string, relativePath: string, record: CgroupRecord): Promise<void> {
    let current = hierarchy;
    for (const part of relativePath.split('/')) {
      current = path.join(current, part);
      try {
        await fs.mkdir(current);
        record.createdDirs.push(current);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
  }

  private async applyLimits(dirs: string[], resources: Resources | undefined): Promise<void> {
    // Find each controller's directory by its interface files, not by path names.
    const memory = await findWith(dirs, 'memory.limit_in_bytes');
    const pids = await findWith(dirs, 'pids.max');
    const cpu = await findWith(dirs, 'cpu.shares');
    if (resources?.memory?.limit !== undefined && memory !== undefined) {
      const limit = resources.memory.limit;
      await writeControl(memory, 'memory.limit_in_bytes', String(limit < 0 ? -1 : limit));
      // OCI's swap is memory+swap. Unset means "no swap beyond the limit", so an OOM is an OOM.
      const memsw = resources.memory.swap ?? limit;
      if (await exists(path.join(memory, 'memory.memsw.limit_in_bytes'))) {
        await writeControl(memory, 'memory.memsw.limit_in_bytes', String(memsw < 0 ? -1 : memsw));
      }
    }
    if (resources?.pids !== undefined && pids !== undefined) {
      await writeControl(pids, 'pids.max', resources.pids.limit > 0 ? String(resources.pids.limit) : 'max');
    }
    const cpuLimits = resources?.cpu;
    if (cpuLimits !== undefined && cpu !== undefined) {
      if (cpuLimits.shares !== undefined) await writeControl(cpu, 'cpu.shares', String(cpuLimits.shares));
      if (cpuLimits.period !== undefined) await writeControl(cpu, 'cpu.cfs_period_us', String(cpuLimits.period));
      if (cpuLimits.quota !== undefined) await writeControl(cpu, 'cpu.cfs_quota_us', String(cpuLimits.quota));
    }
  }
}

async function findWith(dirs: string[], file: string): Promise<string | undefined> {
  for (const dir of dirs) if (await exists(path.join(dir, file))) return dir;
  return undefined;
}

async function writeControl(dir: string, file: string, value: string): Promise<void> {
  try {
    await fs.writeFile(path.join(dir, file), value);
  } catch (err) {
    throw new Error(`cannot set ${file}=${value} in ${dir}: ${(err as Error).message}`);
  }
}

async function rmdirDraining(dir: string, isLeaf: boolean): Promise<void> {
  const deadline = Date.now() + 3000;
  for (let attempt = 0; ; attempt++) {
    try {
      await fs.rmdir(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || !isLeaf || Date.now() > deadline) throw err;
      // Tasks of a dead pid namespace leave asynchronously; after a while, kill stragglers
      // (they can only be this container's own processes).
      if (attempt === 20) await killRemaining(dir);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

async function killRemaining(dir: string): Promise<void> {
  const text = await fs.readFile(path.join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const pid = Number(line);
    if (Number.isInteger(pid) && pid > 0) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(
    () => true,
    () => false,
  );
}
