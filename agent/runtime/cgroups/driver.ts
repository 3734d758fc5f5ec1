// The face of the cgroup drivers to the runtime: create a container's cgroup from OCI
// linux.resources, hand the init the cgroup.procs files to join, read stats and OOM, remove.

import type { ContainerStats } from '../types.js';
import type { StatsScope } from './stats-files.js';
import type { BlockDevice } from './block-devices.js';

export interface CgroupCreateOptions {
  /**
   * Disks whose I/O by the container should be counted in its stats. v1 needs a (no-op) throttle
   * rule per disk to count at all (block-devices.ts); v2's io.stat counts without one.
   */
  ioAccountedDisks?: readonly BlockDevice[];
}

/** What create() made: remove() needs exactly this (it is kept in the container's state file). */
export interface CgroupRecord {
  /** The container's cgroup directories: one per v1 hierarchy, or the single v2 directory. */
  dirs: string[];
  /** Directories create() made itself (leaf and any new parents), in creation order. */
  createdDirs: string[];
  /** What the kernel interface could not do: spec fields not honoured, I/O not accounted; the container runs without them. */
  warnings?: string[];
}

export interface CgroupDriver {
  readonly version: 'v1' | 'v2';
  /**
   * Validates `resources` (untrusted: errors name the field), creates the cgroup and writes every
   * limit. On failure nothing it created is left behind.
   */
  create(relativePath: string, resources: unknown, options?: CgroupCreateOptions): Promise<CgroupRecord>;
  /** The files the container's init (single-threaded) writes "0" into before execve to join: cgroup.procs, or tasks on v1. */
  procsFiles(record: CgroupRecord): string[];
  /** True when the kernel OOM killer killed a process of this cgroup. */
  oomKilled(record: CgroupRecord): Promise<boolean>;
  /** The cgroup's counters; `metrics` reads only the files the Prometheus families use. */
  stats(record: CgroupRecord, scope?: StatsScope): Promise<ContainerStats>;
  /** Removes the directories create() made; kills stragglers of the leaf if it will not drain. */
  remove(record: CgroupRecord): Promise<void>;
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
