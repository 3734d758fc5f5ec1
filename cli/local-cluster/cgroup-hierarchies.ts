// Where this host mounts its cgroup hierarchies, read from /proc/self/mountinfo so hybrid hosts (v1
// controllers and cgroup2 at /sys/fs/cgroup/unified) and pure v2 hosts (cgroup2 at /sys/fs/cgroup)
// are both covered. The netns cluster removes its cgroups from every one of them; the tests' own
// view of the host's cgroups (test/helpers/host-cgroups.ts) takes its roots from here too.

import { readFile } from 'node:fs/promises';

/** Mount points of every cgroup hierarchy (v1 controllers, cgroup2), each once. */
export async function cgroupHierarchies(): Promise<string[]> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  const roots = new Set<string>();
  for (const line of mountinfo.split('\n')) {
    const [before, after] = line.split(' - ');
    const mountPoint = before?.split(' ')[4];
    const fsType = after?.split(' ')[0];
    if (mountPoint && (fsType === 'cgroup' || fsType === 'cgroup2')) roots.add(mountPoint);
  }
  return [...roots];
}
