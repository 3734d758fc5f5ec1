// The mount plan for an OCI `cgroup` mount (runc's default spec has one at /sys/fs/cgroup), for
// both host layouts. Pure: the plan is checked exactly here for v1 (this machine kind, hybrid)
// and for pure v2 (Debian 12's default), which test/integration/runtime-runc-default-spec.test.ts
// can only run on a host that has it.

import test from 'ava';
import { planCgroupMount, planMounts, type CgroupMountContext } from '../../agent/runtime/mount-plan.js';
import type { NativeMount } from '../../agent/runtime/native.js';

// The entry `runc spec` writes, unchanged.
const RUNC_DEFAULT = { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] };
const FLAGS = ['nosuid', 'noexec', 'nodev', 'relatime'] as const;

function v1(dirs: string[]): CgroupMountContext {
  return { version: 'v1', mountRoot: '/sys/fs/cgroup', dirs, namespace: false };
}

test("v1: a tmpfs, a read-only bind of the container's own directory per hierarchy, then the tmpfs made read-only", async (t) => {
  const planned = await planMounts(
    [RUNC_DEFAULT],
    'mounts',
    v1(['/sys/fs/cgroup/memory/tessera/c1', '/sys/fs/cgroup/pids/tessera/c1', '/sys/fs/cgroup/blkio/tessera/c1']),
  );
  const bind = (name: string): NativeMount => ({
    source: `/sys/fs/cgroup/${name}/tessera/c1`,
    destination: `/sys/fs/cgroup/${name}`,
    fstype: '',
    flags: [...FLAGS, 'rdonly', 'bind', 'rec'],
    data: '',
    remountReadonly: true,
    targetKind: 'dir',
    propagation: [],
  });
  t.deepEqual(planned, [
    {
      source: 'tmpfs',
      destination: '/sys/fs/cgroup',
      fstype: 'tmpfs',
      flags: [...FLAGS],
      data: 'mode=755',
      remountReadonly: false,
      targetKind: 'dir',
      propagation: [],
    },
    bind('blkio'),
    bind('memory'),
    bind('pids'),
    {
      source: '',
      destination: '/sys/fs/cgroup',
      fstype: '',
      flags: [...FLAGS, 'remount', 'bind', 'rdonly'],
      data: '',
      remountReadonly: false,
      targetKind: 'dir',
    },
  ]);
});

test("v1: co-mounted controllers get one bind under the hierarchy's name and a symlink per controller", (t) => {
  const planned = planCgroupMount(
    '/sys/fs/cgroup',
    [...FLAGS],
    [],
    v1(['/sys/fs/cgroup/cpu,cpuacct/a/b', '/sys/fs/cgroup/net_cls,net_prio/a/b', '/sys/fs/cgroup/memory/a/b']),
    'm',
  );
  t.deepEqual(
    planned.map((m) => [m.destination, m.symlinkTarget ?? m.fstype, m.source]),
    [
      ['/sys/fs/cgroup', 'tmpfs', 'tmpfs'],
      ['/sys/fs/cgroup/cpu,cpuacct', '', '/sys/fs/cgroup/cpu,cpuacct/a/b'],
      ['/sys/fs/cgroup/memory', '', '/sys/fs/cgroup/memory/a/b'],
      ['/sys/fs/cgroup/net_cls,net_prio', '', '/sys/fs/cgroup/net_cls,net_prio/a/b'],
      ['/sys/fs/cgroup/cpu', 'cpu,cpuacct', ''],
      ['/sys/fs/cgroup/cpuacct', 'cpu,cpuacct', ''],
      ['/sys/fs/cgroup/net_cls', 'net_cls,net_prio', ''],
      ['/sys/fs/cgroup/net_prio', 'net_cls,net_prio', ''],
    ],
  );
  // Without ro nothing is made read-only, and there is no final remount.
  t.true(planned.every((m) => !m.remountReadonly && !m.flags.includes('rdonly')));
});

test('v1: a cgroup namespace changes nothing (its root is the same directory the binds show)', (t) => {
  const dirs = ['/sys/fs/cgroup/memory/tessera/c1'];
  t.deepEqual(
    planCgroupMount('/sys/fs/cgroup', ['rdonly'], [], { ...v1(dirs), namespace: true }, 'm'),
    planCgroupMount('/sys/fs/cgroup', ['rdonly'], [], v1(dirs), 'm'),
  );
});

test('v2 with a cgroup namespace: a cgroup2 mount, read-only as asked', async (t) => {
  const ctx: CgroupMountContext = { version: 'v2', mountRoot: '/sys/fs/cgroup', dirs: ['/sys/fs/cgroup/tessera/c1'], namespace: true };
  t.deepEqual(await planMounts([RUNC_DEFAULT], 'mounts', ctx), [
    {
      source: 'cgroup',
      destination: '/sys/fs/cgroup',
      fstype: 'cgroup2',
      flags: [...FLAGS, 'rdonly'],
      data: '',
      remountReadonly: false,
      targetKind: 'dir',
      propagation: [],
    },
  ]);
});

test("v2 without a cgroup namespace: a read-only bind of the container's own directory, never the host's tree", async (t) => {
  const ctx: CgroupMountContext = { version: 'v2', mountRoot: '/sys/fs/cgroup', dirs: ['/sys/fs/cgroup/tessera/c1'], namespace: false };
  t.deepEqual(await planMounts([{ ...RUNC_DEFAULT, options: ['nosuid', 'ro', 'rslave'] }], 'mounts', ctx), [
    {
      source: '/sys/fs/cgroup/tessera/c1',
      destination: '/sys/fs/cgroup',
      fstype: '',
      flags: ['nosuid', 'rdonly', 'bind', 'rec'],
      data: '',
      remountReadonly: true,
      targetKind: 'dir',
      propagation: ['slave', 'rec'],
    },
  ]);
});

test('a cgroup mount refuses file-system options and directories outside the mount root, naming the entry', async (t) => {
  await t.throwsAsync(planMounts([{ ...RUNC_DEFAULT, options: ['ro', 'mode=700'] }], 'config.json: mounts', v1(['/sys/fs/cgroup/memory/c'])), {
    message: 'config.json: mounts[0] (/sys/fs/cgroup): unknown option(s) for a cgroup mount: mode=700',
  });
  await t.throwsAsync(planMounts([RUNC_DEFAULT], 'mounts', v1(['/elsewhere/memory/c'])), {
    message: /mounts\[0\] \(\/sys\/fs\/cgroup\): the container's cgroup \/elsewhere\/memory\/c is not inside a hierarchy under \/sys\/fs\/cgroup/,
  });
  await t.throwsAsync(planMounts([RUNC_DEFAULT], 'mounts', v1(['/sys/fs/cgroup/memory'])), { message: /is not inside a hierarchy/ });
});
