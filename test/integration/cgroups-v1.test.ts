// cgroup v1 on this machine's real hierarchies, through the NativeRuntime: every resource file,
// the device allow-list, stats of a busy container, OOM reporting, and refused limits that leave
// nothing behind. Each test has its own cgroup parent (RuntimeFixture) and removes it.

import test, { type ExecutionContext } from 'ava';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { CgroupsV1 } from '../../agent/runtime/cgroups/v1.js';
import type { CgroupRecord } from '../../agent/runtime/cgroups/driver.js';
import type { LinuxResources } from '../../agent/runtime/types.js';
import { hostCgroups } from '../helpers/host-cgroups.js';
import { CGROUP_MOUNT_ROOT, RuntimeFixture, withTimeout } from '../helpers/runtime-fixture.js';

const MiB = 1024 * 1024;
const HIERARCHIES = ['memory', 'pids', 'cpu', 'cpuacct', 'cpuset', 'devices', 'blkio'];

/**
 * A block device this (root) process can open for reading, to show the container cannot; on this
 * VM the disk itself cannot be opened even by the host's root, but zram0 can.
 */
async function openableBlockDevice(): Promise<{ major: number; minor: number } | undefined> {
  for (const name of await fs.readdir('/sys/block').catch(() => [])) {
    const handle = await fs.open(`/dev/${name}`, 'r').catch(() => undefined);
    if (handle === undefined) continue;
    await handle.close();
    const [major, minor] = (await fs.readFile(`/sys/block/${name}/dev`, 'utf8')).trim().split(':').map(Number);
    if (major !== undefined && minor !== undefined) return { major, minor };
  }
  return undefined;
}

/**
 * The whole disk under the fixture's bundles and rootfs, found with util-linux (findmnt, lsblk)
 * rather than the runtime's own code; undefined when they are on no block device (e.g. tmpfs).
 */
async function diskUnder(dir: string): Promise<{ major: number; minor: number; name: string } | undefined> {
  const source = (await execFileText('findmnt', ['-n', '-o', 'MAJ:MIN', '--target', dir])).trim();
  // Raw rows "MAJ:MIN PKNAME NAME"; a partition names its disk in PKNAME, a disk leaves it empty.
  const rows = (await execFileText('lsblk', ['-n', '-r', '-o', 'MAJ:MIN,PKNAME,NAME'])).split('\n').map((l) => l.split(' '));
  const row = rows.find((r) => r[0] === source);
  if (row === undefined) return undefined;
  const disk = row[1] === undefined || row[1] === '' ? row : rows.find((r) => r[2] === row[1]);
  const [major, minor] = (disk?.[0] ?? '').split(':').map(Number);
  if (major === undefined || minor === undefined || Number.isNaN(minor)) return undefined;
  return { major, minor, name: disk?.[2] ?? '?' };
}

function execFileText(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, (err, stdout) => (err === null ? resolve(stdout) : reject(new Error(`${file} ${args.join(' ')}: ${err.message}`, { cause: err }))));
  });
}

/** Which weight file the kernel gives a blkio cgroup, by I/O scheduler: CFQ-era blkio.weight, BFQ's, or none (mq-deadline, none). */
/** A whole disk (every entry of /sys/block is one), for throttle rules, which partitions refuse. */
async function anyDisk(): Promise<{ major: number; minor: number }> {
  for (const name of await fs.readdir('/sys/block')) {
    const [major, minor] = (await fs.readFile(`/sys/block/${name}/dev`, 'utf8')).trim().split(':').map(Number);
    if (major !== undefined && minor !== undefined) return { major, minor };
  }
  throw new Error('no block device in /sys/block');
}

/** How many CPUs the kernel could ever bring up (/sys/devices/system/cpu/possible, e.g. "0-3,6"). */
async function possibleCpus(): Promise<number> {
  let count = 0;
  for (const range of (await fs.readFile('/sys/devices/system/cpu/possible', 'utf8')).trim().split(',')) {
    const [from, to] = range.split('-').map(Number);
    if (from !== undefined) count += (to ?? from) - from + 1;
  }
  return count;
}

async function blkioWeightFile(): Promise<string | undefined> {
  const root = (await hostCgroups()).v1Roots.get('blkio');
  if (root === undefined) return undefined;
  for (const file of ['blkio.weight', 'blkio.bfq.weight'])
    if (
      await fs.access(path.join(root, file)).then(
        () => true,
        () => false,
      )
    )
      return file;
  return undefined;
}

/**
 * On a host without v1 hierarchies (pure cgroup v2, Debian 12's default) the v1 driver must
 * refuse with a clear error; the same limits are checked on v2 in cgroups-v2-real.test.ts.
 * Returns true when the caller's v1 checks should not run.
 */
async function pureV2Host(t: ExecutionContext): Promise<boolean> {
  const host = await hostCgroups();
  if (host.mode !== 'v2') return false;
  t.log('case: pure cgroup v2 host: the v1 driver must refuse; v1 files are not checked here');
  await t.throwsAsync(new CgroupsV1(CGROUP_MOUNT_ROOT).create('tessera-test-v1-refused', {}), { message: /cgroup v1 controller 'memory' is not mounted/ });
  return true;
}

const cgFile = (controller: string, cgPath: string, file: string) =>
  fs.readFile(path.join(CGROUP_MOUNT_ROOT, controller, cgPath, file), 'utf8').then((s) => s.trim());

/** The record the runtime keeps, rebuilt from the path (how stats are read for a container). */
function recordOf(cgPath: string): CgroupRecord {
  return { dirs: HIERARCHIES.map((h) => path.join(CGROUP_MOUNT_ROOT, h, cgPath)), createdDirs: [] };
}

async function createWith(fx: RuntimeFixture, args: string[], resources: LinuxResources): Promise<string> {
  const id = fx.newId();
  const spec = fx.specFor(id, { args });
  spec.linux = { ...spec.linux, resources };
  const bundle = await fx.writeBundle(id, spec);
  fx.track(id);
  await fs.mkdir(path.join(fx.dir, 'logs'), { recursive: true });
  await fx.runtime.create(id, bundle, { logPath: fx.logPath(id) });
  return id;
}

async function runWith(fx: RuntimeFixture, args: string[], resources: LinuxResources): Promise<{ exitCode: number; log: string }> {
  const id = await createWith(fx, args, resources);
  await fx.runtime.start(id);
  const exit = await withTimeout(fx.runtime.wait(id), 20_000);
  const log = await fs.readFile(fx.logPath(id), 'utf8').catch(() => '');
  await fx.runtime.delete(id);
  return { exitCode: exit.exitCode, log };
}

test('every linux.resources field is written to its v1 file for a real container', async (t) => {
  if (await pureV2Host(t)) return;
  const fx = await RuntimeFixture.create();
  t.teardown(async () => {
    await fx.cleanup();
  });
  const disk = await anyDisk();
  const dev = `${disk.major}:${disk.minor}`;
  // Weights exist only under an I/O scheduler that has them (CFQ, BFQ); mq-deadline and none do not.
  const weightFile = await blkioWeightFile();
  if (weightFile === undefined) {
    t.log('case: the block I/O scheduler has no weights: blockIO.weight must be refused, naming the field');
    await t.throwsAsync(createWith(fx, ['true'], { blockIO: { weight: 300 } }), {
      message:
        /: linux\.resources\.blockIO\.weight: not supported by this kernel: no blkio\.weight or blkio\.bfq\.weight .*\(the block I\/O scheduler has no weights\)/,
    });
    t.deepEqual(await fx.leftoverCgroups(), [], 'the refused create left no cgroup');
  } else {
    t.log(`case: the block I/O scheduler has weights (${weightFile}): blockIO.weight is written and read back`);
  }
  const id = await createWith(fx, ['sleep', '60'], {
    memory: { limit: 64 * MiB, reservation: 32 * MiB, swap: 80 * MiB, swappiness: 20 },
    cpu: { shares: 256, quota: 20_000, period: 50_000, cpus: '0', mems: '0' },
    pids: { limit: 33 },
    blockIO: {
      ...(weightFile === undefined ? {} : { weight: 300 }),
      throttleReadBpsDevice: [{ ...disk, rate: 1_048_576 }],
      throttleWriteBpsDevice: [{ ...disk, rate: 2_097_152 }],
      throttleReadIOPSDevice: [{ ...disk, rate: 100 }],
      throttleWriteIOPSDevice: [{ ...disk, rate: 200 }],
    },
    devices: [
      { allow: false, access: 'rwm' },
      { allow: true, type: 'c', major: 10, minor: 200, access: 'rw' },
    ],
  });
  const cg = fx.cgroupPathOf(id);
  t.is(await cgFile('memory', cg, 'memory.limit_in_bytes'), String(64 * MiB));
  t.is(await cgFile('memory', cg, 'memory.memsw.limit_in_bytes'), String(80 * MiB));
  t.is(await cgFile('memory', cg, 'memory.soft_limit_in_bytes'), String(32 * MiB));
  t.is(await cgFile('memory', cg, 'memory.swappiness'), '20');
  t.is(await cgFile('cpu', cg, 'cpu.shares'), '256');
  t.is(await cgFile('cpu', cg, 'cpu.cfs_period_us'), '50000');
  t.is(await cgFile('cpu', cg, 'cpu.cfs_quota_us'), '20000');
  t.is(await cgFile('cpuset', cg, 'cpuset.cpus'), '0');
  t.is(await cgFile('cpuset', cg, 'cpuset.mems'), '0');
  t.is(await cgFile('cpuset', fx.cgroupParent, 'cpuset.cpus'), await cgFile('cpuset', '', 'cpuset.cpus'), 'the new parent inherited cpus');
  t.is(await cgFile('pids', cg, 'pids.max'), '33');
  if (weightFile !== undefined) t.regex(await cgFile('blkio', cg, weightFile), /(^|default )300$/m);
  t.is(await cgFile('blkio', cg, 'blkio.throttle.read_bps_device'), `${dev} 1048576`);
  t.is(await cgFile('blkio', cg, 'blkio.throttle.write_bps_device'), `${dev} 2097152`);
  t.is(await cgFile('blkio', cg, 'blkio.throttle.read_iops_device'), `${dev} 100`);
  t.is(await cgFile('blkio', cg, 'blkio.throttle.write_iops_device'), `${dev} 200`);
  const devices = (await cgFile('devices', cg, 'devices.list')).split('\n').sort();
  t.deepEqual(
    devices,
    [
      'b *:* m',
      'c *:* m',
      'c 1:3 rwm',
      'c 1:5 rwm',
      'c 1:7 rwm',
      'c 1:8 rwm',
      'c 1:9 rwm',
      'c 10:200 rw',
      'c 136:* rwm',
      'c 5:0 rwm',
      'c 5:1 rwm',
      'c 5:2 rwm',
    ].sort(),
  );
  const pid = String((await fx.runtime.state(id))?.pid);
  for (const h of HIERARCHIES) t.is(await cgFile(h, cg, 'cgroup.procs'), pid, `init joined ${h} before exec`);
  await fx.runtime.kill(id, 'SIGKILL');
  await withTimeout(fx.runtime.wait(id), 5000);
  await fx.runtime.delete(id);
  t.deepEqual(await fx.leftoverCgroups(), [], 'delete removed the cgroup from every hierarchy');
  t.deepEqual(await fx.cleanup(), { cgroups: [], mounts: [] });
});

test('the device allow-list blocks opening a disallowed node and allows a listed one', async (t) => {
  if (await pureV2Host(t)) return;
  const fx = await RuntimeFixture.create();
  t.teardown(async () => {
    await fx.cleanup();
  });
  const openable = await openableBlockDevice();
  const { major, minor } = openable ?? (await anyDisk());
  // mknod is allowed (as under Docker); opening the node is what the cgroup decides.
  const probe = [
    'sh',
    '-c',
    `/bin/busybox mknod /dev/disk0 b ${major} ${minor} && echo made; head -c 1 /dev/disk0 >/dev/null && echo OPENED; echo x > /dev/null && echo null-ok`,
  ];
  const blocked = await runWith(fx, probe, {});
  t.regex(blocked.log, /made/);
  t.regex(blocked.log, /disk0: Operation not permitted/, blocked.log);
  t.notRegex(blocked.log, /OPENED/);
  t.regex(blocked.log, /null-ok/, 'the default set stays usable');
  if (openable === undefined) {
    t.log('no block device the host itself can open: the allowed half is not checked');
  } else {
    const allowed = await runWith(fx, probe, { devices: [{ allow: true, type: 'b', major, minor, access: 'r' }] });
    t.regex(allowed.log, /OPENED/, allowed.log);
  }
  t.deepEqual(await fx.cleanup(), { cgroups: [], mounts: [] });
});

test('stats of a container burning CPU and holding memory', async (t) => {
  if (await pureV2Host(t)) return;
  const fx = await RuntimeFixture.create();
  t.teardown(async () => {
    await fx.cleanup();
  });
  const disk = await diskUnder(fx.rootfs);
  const throttleFiles = await fs.access(path.join((await hostCgroups()).v1Roots.get('blkio') ?? '/nonexistent', 'blkio.throttle.io_service_bytes')).then(
    () => true,
    () => false,
  );
  // Direct I/O to a file in the rootfs (on the disk under it) shows up in blkio; dd's 24 MiB buffer
  // stays resident while it blocks writing into a pipe nobody reads; the loop burns CPU under a
  // 0.1 CPU quota (small, so it throttles even when the machine is busy).
  const script = [
    'dd if=/dev/zero of=/tmp/blk bs=4096 count=16 oflag=direct 2>/dev/null',
    'dd if=/tmp/blk of=/dev/null bs=4096 iflag=direct 2>/dev/null',
    'dd if=/dev/zero bs=24M count=1 | sleep 600 &',
    'while :; do :; done',
  ]
    .join('; ')
    .replace('&;', '&');
  const id = await createWith(fx, ['sh', '-c', script], {
    memory: { limit: 128 * MiB },
    cpu: { quota: 10_000, period: 100_000 },
    pids: { limit: 50 },
  });
  await fx.runtime.start(id);
  const driver = new CgroupsV1(CGROUP_MOUNT_ROOT);
  const record = recordOf(fx.cgroupPathOf(id));
  let stats = await driver.stats(record);
  // The kernel adds to throttled_time only when a throttled period ends, so nr_throttled can lead it.
  for (
    let i = 0;
    i < 200 &&
    (stats.memory.usageBytes < 24 * MiB || stats.cpu.usageNanos < 50e6 || (stats.cpu.throttledPeriods ?? 0) === 0 || (stats.cpu.throttledNanos ?? 0) === 0);
    i++
  ) {
    await new Promise((r) => setTimeout(r, 50));
    stats = await driver.stats(record);
  }
  t.is(stats.cgroupVersion, 'v1');
  t.true(stats.memory.usageBytes >= 24 * MiB, JSON.stringify(stats.memory));
  t.is(stats.memory.limitBytes, 128 * MiB);
  t.true((stats.memory.maxUsageBytes ?? 0) >= stats.memory.usageBytes);
  t.true((stats.memory.rssBytes ?? 0) >= 24 * MiB, 'the dd buffer is anonymous memory');
  t.is(typeof stats.memory.cacheBytes, 'number');
  t.is(stats.memory.oomKills, 0);
  t.true(stats.cpu.usageNanos >= 50e6, JSON.stringify(stats.cpu));
  t.is(stats.cpu.perCpuNanos?.length, await possibleCpus(), 'cpuacct lists every possible CPU');
  t.true((stats.cpu.throttledPeriods ?? 0) > 0, 'the 0.1 CPU quota throttles a busy loop');
  t.true((stats.cpu.throttledNanos ?? 0) > 0);
  t.true((stats.cpu.userNanos ?? 0) > 0);
  t.true(stats.pids.current >= 3, JSON.stringify(stats.pids));
  t.is(stats.pids.limit, 50);
  if (disk !== undefined && throttleFiles) {
    t.log(`case: the rootfs is on ${disk.name} (${disk.major}:${disk.minor}) and the kernel has blkio throttle counters: the container's I/O there is counted`);
    const diskStats = stats.blockIO.devices.find((d) => d.major === disk.major && d.minor === disk.minor);
    t.true((diskStats?.readBytes ?? 0) >= 16 * 4096, JSON.stringify(stats.blockIO));
    t.true((diskStats?.writeBytes ?? 0) >= 16 * 4096, JSON.stringify(stats.blockIO));
    t.true((diskStats?.readOps ?? 0) >= 1);
    t.true((diskStats?.writeOps ?? 0) >= 1);
  } else {
    t.log(
      `case: ${disk === undefined ? 'the rootfs is on no block device' : 'the kernel has no blkio throttle counters'}: no disk I/O can be accounted, none is reported`,
    );
    t.deepEqual(stats.blockIO.devices, []);
  }
  // Under the quota the loop runs 10 ms of each 100 ms period: look again some periods later, for
  // up to 10 s (a saturated machine may not schedule it in every period).
  let later = await driver.stats(record);
  for (let i = 0; i < 100 && later.cpu.usageNanos <= stats.cpu.usageNanos; i++) {
    await new Promise((r) => setTimeout(r, 100));
    later = await driver.stats(record);
  }
  t.true(later.cpu.usageNanos > stats.cpu.usageNanos, 'cpu usage grows');
  // The runtime's own entry point reads the same cgroup through the record in state.json.
  const viaRuntime = await fx.runtime.stats(id);
  t.is(viaRuntime.cgroupVersion, 'v1');
  t.is(viaRuntime.memory.limitBytes, 128 * MiB);
  t.is(viaRuntime.pids.limit, 50);
  t.true(viaRuntime.cpu.usageNanos >= later.cpu.usageNanos);
  t.deepEqual(await fx.cleanup(), { cgroups: [], mounts: [] });
});

test('an OOM kill is reported in the exit status and the oom_kill counter', async (t) => {
  if (await pureV2Host(t)) return;
  const fx = await RuntimeFixture.create();
  t.teardown(async () => {
    await fx.cleanup();
  });
  const id = await createWith(fx, ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1'], { memory: { limit: 32 * MiB } });
  await fx.runtime.start(id);
  const exit = await withTimeout(fx.runtime.wait(id), 10_000);
  t.true(exit.oomKilled, JSON.stringify(exit));
  const driver = new CgroupsV1(CGROUP_MOUNT_ROOT);
  const record = recordOf(fx.cgroupPathOf(id));
  t.true(await driver.oomKilled(record));
  const stats = await driver.stats(record);
  t.true(stats.memory.oomKills >= 1);
  // Kernel 6.18 leaves memory.failcnt at 0 even across this OOM; only its presence is checked.
  t.is(typeof stats.memory.failCount, 'number');
  t.true((stats.memory.maxUsageBytes ?? 0) >= 31 * MiB, 'usage reached the limit');
  await fx.runtime.delete(id);
  t.deepEqual(await fx.cleanup(), { cgroups: [], mounts: [] });
});

test('limits the kernel refuses give an error naming the field and leave no cgroup behind', async (t) => {
  if (await pureV2Host(t)) return;
  const fx = await RuntimeFixture.create();
  t.teardown(async () => {
    await fx.cleanup();
  });
  const refused = async (resources: LinuxResources, message: RegExp) => {
    const id = fx.newId();
    await t.throwsAsync(createWith(fx, ['true'], resources), { message });
    t.is(await fx.runtime.state(id), undefined, 'no state left');
    t.deepEqual(await fx.leftoverCgroups(), [], `no cgroup left after ${JSON.stringify(resources)}`);
  };
  await refused(
    { blockIO: { throttleReadBpsDevice: [{ major: 7, minor: 250, rate: 1000 }] } },
    /linux\.resources\.blockIO\.throttleReadBpsDevice\[0\]: cannot write "7:250 1000"/,
  );
  await refused(
    { cpu: { realtimeRuntime: 10_000, realtimePeriod: 1_000_000 } },
    /linux\.resources\.cpu\.realtimeRuntime: cannot write "10000".*real-time budget/,
  );
  await refused({ cpu: { cpus: '0-63' } }, /linux\.resources\.cpu\.cpus: cannot write "0-63"/);
  await refused({ memory: { limit: 64 * MiB, swap: 16 * MiB } }, /linux\.resources\.memory\.swap: must be >= memory\.limit/);
  if (
    !(await fs.access(path.join(CGROUP_MOUNT_ROOT, 'hugetlb')).then(
      () => true,
      () => false,
    ))
  ) {
    await refused(
      { hugepageLimits: [{ pageSize: '2MB', limit: 0 }] },
      /linux\.resources\.hugepageLimits\[0\]: the cgroup v1 'hugetlb' controller is not mounted/,
    );
  }
  await refused({ unified: { 'memory.high': '1' } }, /linux\.resources\.unified: only valid on cgroup v2/);
  t.deepEqual(await fx.cleanup(), { cgroups: [], mounts: [] });
});

test('a memory limit below what the cgroup already uses is refused; the dirs it made are removed', async (t) => {
  if (await pureV2Host(t)) return;
  const fx = await RuntimeFixture.create();
  const cgPath = `${fx.cgroupParent}/busy`;
  const memoryDir = path.join(CGROUP_MOUNT_ROOT, 'memory', cgPath);
  const pids: number[] = [];
  t.teardown(async () => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await fx.cleanup();
  });
  // A memory cgroup already holding ~24 MiB of anonymous memory, made outside the driver.
  await fs.mkdir(memoryDir, { recursive: true });
  const holder = spawn(
    '/bin/busybox',
    ['sh', '-c', `echo $$ > ${memoryDir}/cgroup.procs && /bin/busybox dd if=/dev/zero bs=24M count=1 | /bin/busybox sleep 600`],
    { stdio: 'ignore' },
  );
  if (holder.pid !== undefined) pids.push(holder.pid);
  for (let i = 0; i < 100; i++) {
    const usage = Number(await fs.readFile(path.join(memoryDir, 'memory.usage_in_bytes'), 'utf8'));
    if (usage >= 24 * MiB) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  for (const line of (await fs.readFile(path.join(memoryDir, 'cgroup.procs'), 'utf8')).split('\n')) if (line !== '') pids.push(Number(line));
  const driver = new CgroupsV1(CGROUP_MOUNT_ROOT);
  await t.throwsAsync(driver.create(cgPath, { memory: { limit: 4 * MiB } }), {
    message: /linux\.resources\.memory\.limit: cannot write "4194304" .*\(the limit is below what the cgroup already uses\)/,
  });
  for (const h of HIERARCHIES.filter((x) => x !== 'memory')) {
    t.false(
      await fs.access(path.join(CGROUP_MOUNT_ROOT, h, cgPath)).then(
        () => true,
        () => false,
      ),
      `${h} dir removed`,
    );
  }
  t.true(
    await fs.access(memoryDir).then(
      () => true,
      () => false,
    ),
    'the cgroup it did not create stays',
  );
  t.notThrows(() => process.kill(pids[0] ?? 0, 0), 'its processes were not touched');
});
