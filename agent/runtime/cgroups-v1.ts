// Kept for existing importers: the cgroup code now lives in ./cgroups/ (v1 and v2 drivers).

import { detectCgroupMode } from './cgroups/detect.js';

export { CgroupsV1 } from './cgroups/v1.js';
export { normalizeCgroupsPath, type CgroupRecord } from './cgroups/driver.js';

export type CgroupVersion = 'v1' | 'v2';

/** 'v2' only when the root itself is cgroup2 (with memory and pids); hybrid counts as v1. */
export async function detectCgroupVersion(mountRoot: string): Promise<CgroupVersion> {
  return (await detectCgroupMode(mountRoot)) === 'v2' ? 'v2' : 'v1';
}
