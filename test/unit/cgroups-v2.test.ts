// The cgroup v2 driver against a scratch cgroup2-like tree (a temp dir with the root's
// cgroup.controllers and cgroup.subtree_control), so every limit is checked whatever the host's
// layout; test/integration/cgroups-v2-real.test.ts drives the host's real cgroup2 mount. In a plain directory every write
// appends a line (the driver writes like `echo v >> file`), so the files show exactly what was written.

import test from 'ava';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CgroupsV2 } from '../../agent/runtime/cgroups/v2.js';
import { detectCgroupMode, openCgroupDriver } from '../../agent/runtime/cgroups/detect.js';
import { hostCgroups } from '../helpers/host-cgroups.js';

/** A plain directory is no cgroup2: nothing can be attached there, so the device program is only recorded. */
const attached: string[] = [];
const recordAttach = { attachDeviceFilter: (dir: string) => void attached.push(dir) };

const MiB = 1024 * 1024;

async function scratchRoot(controllers: string, subtree = ''): Promise<{ root: string; cleanup: () => Promise<void> }> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'tessera-cg2-'));
  await fs.writeFile(path.join(root, 'cgroup.controllers'), `${controllers}\n`);
  await fs.writeFile(path.join(root, 'cgroup.subtree_control'), subtree === '' ? '' : `${subtree}\n`);
  return { root, cleanup: () => fs.rm(root, { recursive: true, force: true }) };
}

/** rmdir of a real cgroup ignores its interface files; in a plain dir they must go first. */
async function dropFilesIn(dirs: string[]): Promise<void> {
  for (const dir of dirs) {
    for (const e of await fs.readdir(dir, { withFileTypes: true })) if (e.isFile()) await fs.rm(path.join(dir, e.name));
  }
}

const read = (...p: string[]) => fs.readFile(path.join(...p), 'utf8');

test('create enables controllers down the path and writes every limit to the unified files', async (t) => {
  const { root, cleanup } = await scratchRoot('cpuset cpu io memory hugetlb pids rdma misc');
  t.teardown(cleanup);
  const driver = new CgroupsV2(root, recordAttach);
  const record = await driver.create('tessera/ctr1', {
    memory: { limit: 64 * MiB, reservation: 16 * MiB, swap: 80 * MiB },
    cpu: { shares: 512, quota: 150_000, period: 100_000, cpus: '0-1', mems: '0' },
    pids: { limit: 42 },
    blockIO: {
      weight: 100,
      throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1_000_000 }],
      throttleWriteBpsDevice: [{ major: 8, minor: 0, rate: 2_000_000 }],
    },
    hugepageLimits: [{ pageSize: '2MB', limit: 0 }],
    devices: [{ allow: false, access: 'rwm' }],
  });
  const leaf = path.join(root, 'tessera', 'ctr1');
  t.deepEqual(record.dirs, [leaf]);
  t.deepEqual(record.createdDirs, [path.join(root, 'tessera'), leaf]);
  t.deepEqual(driver.procsFiles(record), [path.join(leaf, 'cgroup.procs')]);
  t.is(await read(root, 'cgroup.subtree_control'), '+cpu +cpuset +hugetlb +io +memory +pids\n');
  t.is(await read(root, 'tessera', 'cgroup.subtree_control'), '+cpu +cpuset +hugetlb +io +memory +pids\n');
  const files = Object.fromEntries(await Promise.all((await fs.readdir(leaf)).map(async (f) => [f, await read(leaf, f)] as const)));
  t.deepEqual(files, {
    'memory.max': `${64 * MiB}\n`,
    'memory.swap.max': `${16 * MiB}\n`,
    'memory.low': `${16 * MiB}\n`,
    'cpu.weight': '20\n',
    'cpu.max': '150000 100000\n',
    'cpuset.cpus': '0-1\n',
    'cpuset.mems': '0\n',
    'pids.max': '42\n',
    // Neither io.bfq.weight nor io.weight exists in a plain dir: the generic io.weight is written.
    'io.weight': 'default 910\n',
    'io.max': '8:0 rbps=1000000\n8:0 wbps=2000000\n',
    'hugetlb.2MB.max': '0\n',
  });
  t.true(attached.includes(leaf), 'the device program is attached to the leaf');
  t.false(record.warnings?.some((w) => /devices/.test(w)) ?? false);
  await dropFilesIn(record.createdDirs);
  await driver.remove(record);
  t.deepEqual(await fs.readdir(root), ['cgroup.controllers', 'cgroup.subtree_control']);
});

test('only missing controllers are enabled, and only those available (stats ones when no limit asks)', async (t) => {
  const { root, cleanup } = await scratchRoot('cpu memory pids hugetlb', 'memory pids');
  t.teardown(cleanup);
  await fs.mkdir(path.join(root, 'parent'));
  // An existing parent: its controllers come from the kernel's file.
  await fs.writeFile(path.join(root, 'parent', 'cgroup.controllers'), 'memory pids\n');
  await fs.writeFile(path.join(root, 'parent', 'cgroup.subtree_control'), 'memory\n');
  const driver = new CgroupsV2(root, recordAttach);
  const record = await driver.create('parent/leaf', { pids: { limit: 5 } });
  t.is(await read(root, 'cgroup.subtree_control'), 'memory pids\n+cpu\n', 'root: cpu added for stats, hugetlb not asked for');
  t.is(await read(root, 'parent', 'cgroup.subtree_control'), 'memory\n+pids\n');
  t.deepEqual(record.createdDirs, [path.join(root, 'parent', 'leaf')]);
  await dropFilesIn(record.createdDirs);
  await driver.remove(record);
  t.true(await fs.stat(path.join(root, 'parent')).then(() => true), 'a parent it did not create stays');
});

test('a controller missing on the path is refused naming the field, before anything is created', async (t) => {
  const { root, cleanup } = await scratchRoot('cpu memory pids');
  t.teardown(cleanup);
  const driver = new CgroupsV2(root, recordAttach);
  await t.throwsAsync(driver.create('tessera/x', { cpu: { cpus: '0' } }), {
    message: /linux\.resources\.cpu\.cpus: the cgroup v2 'cpuset' controller is not available in .* \(cgroup\.controllers: cpu memory pids\)/,
  });
  await t.throwsAsync(driver.create('tessera/x', { memory: { limit: -3 } }), { message: /linux\.resources\.memory\.limit/ });
  await t.throwsAsync(driver.create('tessera/x', { cpu: { realtimeRuntime: 100 } }), { message: /real-time CPU bandwidth has no cgroup v2 interface/ });
  t.deepEqual(await fs.readdir(root), ['cgroup.controllers', 'cgroup.subtree_control']);
  t.is(await read(root, 'cgroup.subtree_control'), '', 'nothing enabled for a refused spec');
});

test('stats and OOM come from memory.current, memory.stat, memory.events, cpu.stat, pids, io.stat', async (t) => {
  const { root, cleanup } = await scratchRoot('cpu io memory pids', 'cpu io memory pids');
  t.teardown(cleanup);
  const driver = new CgroupsV2(root, recordAttach);
  const record = await driver.create('c', {});
  const leaf = path.join(root, 'c');
  t.false(await driver.oomKilled(record));
  const put = (f: string, v: string) => fs.writeFile(path.join(leaf, f), v);
  await put('memory.current', '10485760\n');
  await put('memory.max', 'max\n');
  await put('memory.peak', '20971520\n');
  await put('memory.stat', 'anon 6291456\nfile 4194304\nkernel 12288\n');
  await put('memory.swap.current', '0\n');
  await put('memory.events', 'low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n');
  await put('cpu.stat', 'usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 3\nthrottled_usec 250\n');
  await put('pids.current', '3\n');
  await put('pids.max', '64\n');
  await put('io.stat', '254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n');
  t.true(await driver.oomKilled(record));
  t.deepEqual(await driver.stats(record), {
    cgroupVersion: 'v2',
    memory: { usageBytes: 10 * MiB, maxUsageBytes: 20 * MiB, cacheBytes: 4 * MiB, rssBytes: 6 * MiB, swapBytes: 0, failCount: 7, oomKills: 1 },
    cpu: { usageNanos: 1_500_000, userNanos: 1_000_000, systemNanos: 500_000, periods: 10, throttledPeriods: 3, throttledNanos: 250_000 },
    pids: { current: 3, limit: 64 },
    blockIO: { devices: [{ major: 254, minor: 0, readBytes: 4096, writeBytes: 8192, readOps: 1, writeOps: 2 }] },
  });
  await fs.rm(leaf, { recursive: true });
});

test('detection: v2 only with memory and pids available; hybrid and v1 drive v1', async (t) => {
  const { root, cleanup } = await scratchRoot('hugetlb');
  t.teardown(cleanup);
  await t.throwsAsync(detectCgroupMode(root), { message: /is cgroup v2 but lacks the memory, pids controller\(s\) \(cgroup\.controllers: hugetlb\)/ });
  await fs.writeFile(path.join(root, 'cgroup.controllers'), 'cpu memory pids\n');
  t.is(await detectCgroupMode(root), 'v2');
  t.is((await openCgroupDriver(root)).version, 'v2');

  const v1 = await fs.mkdtemp(path.join(os.tmpdir(), 'tessera-cg1-'));
  t.teardown(() => fs.rm(v1, { recursive: true, force: true }));
  await fs.mkdir(path.join(v1, 'memory'));
  await fs.writeFile(path.join(v1, 'memory', 'memory.limit_in_bytes'), '');
  t.is(await detectCgroupMode(v1), 'v1');
  await fs.mkdir(path.join(v1, 'unified'));
  await fs.writeFile(path.join(v1, 'unified', 'cgroup.controllers'), 'hugetlb\n');
  t.is(await detectCgroupMode(v1), 'hybrid');
  t.is((await openCgroupDriver(v1)).version, 'v1');
  const host = await hostCgroups();
  t.log(`case: this host's layout (from /proc/self/mountinfo) is ${host.mode}`);
  t.is(await detectCgroupMode('/sys/fs/cgroup'), host.mode, 'detection agrees with the kernel mount table');
});
