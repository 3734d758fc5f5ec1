// Pure parts of the runtime: the spec builder, config validation, mount translation, PATH lookup.

import test from 'ava';
import { planMounts } from '../../agent/runtime/mount-plan.js';
import { parseOciSpec } from '../../agent/runtime/oci-config.js';
import { buildOciSpec, DEFAULT_MOUNTS } from '../../agent/runtime/spec.js';
import { buildSpawnPlan, DEFAULT_PATH, executableCandidates, namespacesOf } from '../../agent/runtime/spawn-plan.js';

test('buildOciSpec fills defaults and limits', (t) => {
  const spec = buildOciSpec({
    args: ['httpd', '-f'],
    env: ['A=1'],
    rootfsPath: '/var/lib/tessera/c1/rootfs',
    memoryLimit: 64 * 1024 * 1024,
    pidsLimit: 100,
    cpuQuota: 150_000,
    cgroupsPath: 'tessera/c1',
    hostname: 'web-1',
  });
  t.deepEqual(spec.process.env, [`PATH=${DEFAULT_PATH}`, 'A=1']);
  t.is(spec.process.cwd, '/');
  t.deepEqual(spec.process.user, { uid: 0, gid: 0, additionalGids: [] });
  t.deepEqual(spec.linux?.resources, { memory: { limit: 67108864 }, pids: { limit: 100 }, cpu: { period: 100000, quota: 150000 } });
  t.is(spec.linux?.cgroupsPath, 'tessera/c1');
  t.is(spec.hostname, 'web-1');
  t.true(spec.linux?.maskedPaths?.includes('/proc/kcore'));
  t.deepEqual(
    spec.mounts?.map((m) => m.destination),
    DEFAULT_MOUNTS.map((m) => m.destination),
  );
  t.is(parseOciSpec(JSON.parse(JSON.stringify(spec)), 'x').process.args[0], 'httpd', 'its output validates');
});

test('buildOciSpec rejects bad input naming the field', (t) => {
  t.throws(() => buildOciSpec({ args: [], rootfsPath: '/r' }), { message: /args/ });
  t.throws(() => buildOciSpec({ args: ['x'], rootfsPath: 'rel' }), { message: /rootfsPath/ });
  t.throws(() => buildOciSpec({ args: ['x'], rootfsPath: '/r', memoryLimit: -1 }), { message: /memoryLimit/ });
  t.throws(() => buildOciSpec({ args: ['x'], rootfsPath: '/r', env: ['NOEQUALS'] }), { message: /NOEQUALS/ });
  t.throws(() => buildOciSpec({ args: ['x'], rootfsPath: '/r', cpuQuota: 0.5 }), { message: /cpuQuota must be an integer number of microseconds/ });
});

test('terminal: process.terminal with TERM=xterm unless env sets TERM; the spawn plan carries it and stdinOpen', async (t) => {
  const plain = buildOciSpec({ args: ['sh'], rootfsPath: '/r' });
  t.false(plain.process.terminal);
  t.false(plain.process.env?.some((e) => e.startsWith('TERM=')));
  const tty = buildOciSpec({ args: ['sh'], rootfsPath: '/r', terminal: true });
  t.true(tty.process.terminal);
  t.deepEqual(tty.process.env, [`PATH=${DEFAULT_PATH}`, 'TERM=xterm']);
  t.deepEqual(buildOciSpec({ args: ['sh'], rootfsPath: '/r', terminal: true, env: ['TERM=vt100'] }).process.env, [`PATH=${DEFAULT_PATH}`, 'TERM=vt100']);
  t.true(parseOciSpec(JSON.parse(JSON.stringify(tty)), 'x').process.terminal);
  const inputs = { rootfs: '/r', cgroupProcsFiles: [], logPath: '/l', source: 'b/config.json' };
  const both = await buildSpawnPlan({ ...inputs, spec: tty, stdinOpen: true });
  t.true(both.terminal);
  t.true(both.stdinOpen);
  const neither = await buildSpawnPlan({ ...inputs, spec: plain });
  t.is(neither.terminal, undefined);
  t.is(neither.stdinOpen, undefined);
});

test('parseOciSpec names the file and field of each problem', (t) => {
  const err = t.throws(() =>
    parseOciSpec({ ociVersion: '1.0.2', process: { user: { uid: -1, gid: 0 }, args: [], cwd: '/' }, root: { path: 'rootfs' } }, 'b/config.json'),
  );
  t.regex(err.message, /^b\/config\.json: invalid OCI config: /);
  t.regex(err.message, /process\.user\.uid/);
  t.regex(err.message, /process\.args/);
});

test('executableCandidates follows PATH like execvp', (t) => {
  t.deepEqual(executableCandidates('sh', ['PATH=/bin:/usr/bin/']), ['/bin/sh', '/usr/bin/sh']);
  t.deepEqual(executableCandidates('/bin/sh', ['PATH=/x']), ['/bin/sh']);
  t.deepEqual(
    executableCandidates('sh', []),
    DEFAULT_PATH.split(':').map((d) => `${d}/sh`),
  );
});

test('namespacesOf creates what the spec lists (buildOciSpec: five) and refuses what is not supported', (t) => {
  const spec = buildOciSpec({ args: ['x'], rootfsPath: '/r' });
  t.deepEqual(new Set(namespacesOf(spec, 'c')), new Set(['pid', 'network', 'ipc', 'uts', 'mount']));
  // The user namespace and namespaces joined by path are the security plan's (security-plan.ts).
  t.deepEqual(namespacesOf({ ...spec, linux: { namespaces: [{ type: 'user' }, { type: 'mount' }] } }, 'c'), ['mount']);
  // A kind not listed is the runtime's own (runtime-spec); no list at all means none is created.
  t.deepEqual(namespacesOf({ ...spec, linux: { namespaces: [{ type: 'pid' }] } }, 'c'), ['pid']);
  t.deepEqual(namespacesOf({ ...spec, linux: {} }, 'c'), []);
  t.deepEqual(namespacesOf({ ...spec, linux: { namespaces: [{ type: 'mount' }, { type: 'network', path: '/proc/1/ns/net' }] } }, 'c'), ['mount']);
  t.throws(() => namespacesOf({ ...spec, linux: { namespaces: [{ type: 'mount' }, { type: 'mount' }] } }, 'c'), { message: /listed twice/ });
});

test('planMounts splits OCI options into flags and data', async (t) => {
  const planned = await planMounts(
    [
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/etc/hosts', type: 'bind', source: '/etc/hosts', options: ['rbind', 'rprivate', 'ro'] },
    ],
    'mounts',
  );
  t.deepEqual(planned[0], {
    source: 'tmpfs',
    destination: '/dev',
    fstype: 'tmpfs',
    flags: ['nosuid', 'strictatime'],
    data: 'mode=755,size=65536k',
    remountReadonly: false,
    targetKind: 'dir',
    propagation: [],
  });
  t.deepEqual(planned[1], {
    source: '/etc/hosts',
    destination: '/etc/hosts',
    fstype: '',
    flags: ['bind', 'rec', 'rdonly'],
    data: '',
    remountReadonly: true,
    targetKind: 'file',
    propagation: ['private', 'rec'],
  });
  await t.throwsAsync(planMounts([{ destination: '/x', type: 'cgroupfs', source: 'cgroup' }], 'mounts'), {
    message: /mounts\[0\] \(\/x\): mount type 'cgroupfs' is not supported/,
  });
  // A cgroup mount shows the container's own cgroups (test/unit/runtime-cgroup-mount.test.ts); without them it cannot be planned.
  await t.throwsAsync(planMounts([{ destination: '/x', type: 'cgroup', source: 'cgroup' }], 'mounts'), {
    message: /mounts\[0\] \(\/x\): a cgroup mount needs the container's cgroup/,
  });
  t.deepEqual((await planMounts([{ destination: '/x', type: 'tmpfs', options: ['rslave'] }], 'mounts'))[0]?.propagation, ['slave', 'rec']);
  await t.throwsAsync(planMounts([{ destination: '/x', type: 'tmpfs', options: ['rshared', 'private'] }], 'mounts'), {
    message: /more than one propagation option/,
  });
});

test('detectCgroupVersion tells v1 from v2 by the hierarchy layout', async (t) => {
  const { detectCgroupVersion } = await import('../../agent/runtime/cgroups-v1.js');
  const fs = await import('node:fs/promises');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tessera-cgdetect-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  await t.throwsAsync(detectCgroupVersion(dir), { message: /no cgroup v1 or v2 hierarchy/ });
  await fs.mkdir(path.join(dir, 'memory'));
  await fs.writeFile(path.join(dir, 'memory', 'memory.limit_in_bytes'), '');
  t.is(await detectCgroupVersion(dir), 'v1');
  await fs.writeFile(path.join(dir, 'cgroup.controllers'), 'memory pids');
  t.is(await detectCgroupVersion(dir), 'v2');
});
