// Which cgroup layout the host has, decided once at start-up from the mount root's files
// (not /proc/mounts), so tests can point it at a scratch tree.

import path from 'node:path';
import { exists } from '../../fs-errors.js';
import { readOptional } from './fs-util.js';
import type { CgroupDriver } from './driver.js';
import { CgroupsV1 } from './v1.js';
import { CgroupsV2 } from './v2.js';

/** v2: the root is cgroup2. hybrid: v1 controllers plus a cgroup2 mount at <root>/unified. */
export type CgroupMode = 'v1' | 'v2' | 'hybrid';

/** Controllers a v2 root must offer before we drive it as v2 (else limits would silently not apply). */
export const V2_REQUIRED_CONTROLLERS = ['memory', 'pids'] as const;

export async function detectCgroupMode(root: string): Promise<CgroupMode> {
  const controllers = await readOptional(path.join(root, 'cgroup.controllers'));
  if (controllers !== undefined) {
    const have = new Set(controllers.trim().split(/\s+/));
    const missing = V2_REQUIRED_CONTROLLERS.filter((c) => !have.has(c));
    if (missing.length > 0) {
      throw new Error(
        `${root} is cgroup v2 but lacks the ${missing.join(', ')} controller(s) (cgroup.controllers: ${controllers.trim() || 'none'}); they are probably bound to a v1 hierarchy`,
      );
    }
    return 'v2';
  }
  if (await exists(path.join(root, 'memory', 'memory.limit_in_bytes'))) {
    return (await exists(path.join(root, 'unified', 'cgroup.controllers'))) ? 'hybrid' : 'v1';
  }
  throw new Error(`no cgroup v1 or v2 hierarchy found under ${root}`);
}

/** The driver for the host's layout. Hybrid is driven as v1: the controllers live there. */
export async function openCgroupDriver(root = '/sys/fs/cgroup'): Promise<CgroupDriver> {
  const mode = await detectCgroupMode(root);
  return mode === 'v2' ? new CgroupsV2(root) : new CgroupsV1(root);
}
