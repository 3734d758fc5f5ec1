// Pure cgroup logic: resource validation, the v1 and v2 write plans, device rules, stats parsers.

import test from 'ava';
import { planDeviceWrites, deviceRuleLine } from '../../agent/runtime/cgroups/devices.js';
import { blkioToIoWeight, planV1, planV2, sharesToWeight } from '../../agent/runtime/cgroups/plan.js';
import { validateResources } from '../../agent/runtime/cgroups/resources.js';
import { parseBlkio, parseIoStat, parseKeyValues, parseLimit, parsePerCpu } from '../../agent/runtime/cgroups/stats-parse.js';
import type { LinuxResources } from '../../agent/runtime/types.js';

const MiB = 1024 * 1024;

test('validateResources names each bad field', (t) => {
  const bad = (value: unknown, pattern: RegExp) => t.throws(() => validateResources(value), { message: pattern });
  bad({ memory: { limit: -5 } }, /linux\.resources\.memory\.limit: must be a positive number of bytes or -1/);
  bad({ memory: { limit: 1.5 } }, /linux\.resources\.memory\.limit:/);
  bad({ memory: { limit: 64 * MiB, swap: 32 * MiB } }, /linux\.resources\.memory\.swap: must be >= memory\.limit/);
  bad({ memory: { swap: 32 * MiB } }, /linux\.resources\.memory\.swap: a swap limit needs memory\.limit/);
  bad({ memory: { limit: 32 * MiB, reservation: 64 * MiB } }, /linux\.resources\.memory\.reservation: must not exceed memory\.limit/);
  bad({ memory: { swappiness: 101 } }, /linux\.resources\.memory\.swappiness/);
  bad({ cpu: { shares: 1 } }, /linux\.resources\.cpu\.shares/);
  bad({ cpu: { quota: 500 } }, /linux\.resources\.cpu\.quota: must be >= 1000 microseconds or -1/);
  bad({ cpu: { period: 10 } }, /linux\.resources\.cpu\.period/);
  bad({ cpu: { cpus: '0-a' } }, /linux\.resources\.cpu\.cpus: must be a list like "0-2,4"/);
  bad({ cpu: { mems: '3-1' } }, /linux\.resources\.cpu\.mems: a range must not run backwards/);
  bad({ cpu: { realtimeRuntime: 2000, realtimePeriod: 1000 } }, /linux\.resources\.cpu\.realtimeRuntime: must not exceed/);
  bad({ blockIO: { weight: 5 } }, /linux\.resources\.blockIO\.weight/);
  bad({ blockIO: { throttleReadBpsDevice: [{ major: 8, minor: 0, rate: -1 }] } }, /linux\.resources\.blockIO\.throttleReadBpsDevice\[0\]\.rate/);
  bad({ devices: [{ allow: true, type: 'x' }] }, /linux\.resources\.devices\[0\]\.type/);
  bad({ devices: [{ allow: true, access: 'rwx' }] }, /linux\.resources\.devices\[0\]\.access: must be a combination of r, w and m/);
  bad({ hugepageLimits: [{ pageSize: '2M', limit: 1 }] }, /linux\.resources\.hugepageLimits\[0\]\.pageSize/);
  bad(
    {
      hugepageLimits: [
        { pageSize: '2MB', limit: 1 },
        { pageSize: '2MB', limit: 2 },
      ],
    },
    /hugepageLimits\[1\]\.pageSize: 2MB is listed twice/,
  );
  bad({ unified: { '../etc': 'x' } }, /linux\.resources\.unified/);
  bad({ unified: { 'cgroup.procs': '1' } }, /linux\.resources\.unified\.cgroup\.procs: cgroup\.procs is managed by the runtime/);
  bad({ network: { classID: 1 } }, /linux\.resources: Unrecognized key: "network"/);
  bad({ memory: { limt: 5 } }, /linux\.resources\.memory: Unrecognized key: "limt"/);
  // Several problems are reported together.
  bad({ memory: { limit: 0 }, pids: {} }, /memory\.limit: .*; linux\.resources\.pids\.limit/);
  t.deepEqual(validateResources({ memory: { limit: -1, swap: -1 }, cpu: { cpus: '0-1,3' } }), { memory: { limit: -1, swap: -1 }, cpu: { cpus: '0-1,3' } });
});

test('planV1 maps every OCI field to its v1 file, in a safe order', (t) => {
  const r: LinuxResources = {
    memory: { limit: 64 * MiB, reservation: 32 * MiB, swap: 96 * MiB, swappiness: 10, disableOOMKiller: true },
    cpu: { shares: 512, quota: 50_000, period: 200_000, realtimePeriod: 1_000_000, realtimeRuntime: 950_000, cpus: '0', mems: '0' },
    pids: { limit: 20 },
    blockIO: {
      weight: 300,
      leafWeight: 200,
      weightDevice: [{ major: 254, minor: 0, weight: 400 }],
      throttleReadBpsDevice: [{ major: 254, minor: 0, rate: 1_048_576 }],
      throttleWriteBpsDevice: [{ major: 254, minor: 0, rate: 2_097_152 }],
      throttleReadIOPSDevice: [{ major: 254, minor: 0, rate: 100 }],
      throttleWriteIOPSDevice: [{ major: 254, minor: 0, rate: 200 }],
    },
    devices: [{ allow: true, type: 'c', major: 10, minor: 200, access: 'rw' }],
    hugepageLimits: [{ pageSize: '2MB', limit: 4 * MiB }],
  };
  const lines = planV1(r)
    .filter((w) => w.controller !== 'devices')
    .map((w) => `${w.controller}/${w.file}=${w.value}`);
  t.deepEqual(lines, [
    `memory/memory.limit_in_bytes=${64 * MiB}`,
    `memory/memory.memsw.limit_in_bytes=${96 * MiB}`,
    `memory/memory.soft_limit_in_bytes=${32 * MiB}`,
    'memory/memory.swappiness=10',
    'memory/memory.oom_control=1',
    'cpu/cpu.shares=512',
    'cpu/cpu.cfs_period_us=200000',
    'cpu/cpu.cfs_quota_us=50000',
    'cpu/cpu.rt_period_us=1000000',
    'cpu/cpu.rt_runtime_us=950000',
    'cpuset/cpuset.cpus=0',
    'cpuset/cpuset.mems=0',
    'pids/pids.max=20',
    'blkio/blkio.weight=300',
    'blkio/blkio.leaf_weight=200',
    'blkio/blkio.weight_device=254:0 400',
    'blkio/blkio.throttle.read_bps_device=254:0 1048576',
    'blkio/blkio.throttle.write_bps_device=254:0 2097152',
    'blkio/blkio.throttle.read_iops_device=254:0 100',
    'blkio/blkio.throttle.write_iops_device=254:0 200',
    `hugetlb/hugetlb.2MB.limit_in_bytes=${4 * MiB}`,
  ]);
  const weight = planV1(r).find((w) => w.file === 'blkio.weight');
  t.deepEqual(weight?.alternatives, [{ file: 'blkio.bfq.weight', value: '300' }]);
  t.is(planV1(r).find((w) => w.file === 'blkio.throttle.read_iops_device')?.field, 'linux.resources.blockIO.throttleReadIOPSDevice[0]');
});

test('planV1 defaults: no swap beyond the limit, unlimited values, pids 0 is max', (t) => {
  const w = planV1({ memory: { limit: 8 * MiB }, pids: { limit: 0 }, cpu: { quota: -1 } });
  const memsw = w.find((x) => x.file === 'memory.memsw.limit_in_bytes');
  t.is(memsw?.value, String(8 * MiB));
  t.true(memsw?.ifExists, 'kernels without swap accounting have no memsw file');
  t.is(w.find((x) => x.file === 'pids.max')?.value, 'max');
  t.is(w.find((x) => x.file === 'cpu.cfs_quota_us')?.value, '-1');
  t.throws(() => planV1({ unified: { 'memory.high': '1M' } }), { message: /linux\.resources\.unified: only valid on cgroup v2/ });
});

test('device rules: deny all, the spec rules in order, then the default set', (t) => {
  t.is(deviceRuleLine({ allow: false }), 'a');
  t.is(deviceRuleLine({ allow: true, type: 'b', major: 8 }), 'b 8:* rwm');
  t.is(deviceRuleLine({ allow: true, type: 'c', major: 1, minor: 3, access: 'r' }), 'c 1:3 r');
  const writes = planDeviceWrites([
    { allow: false, access: 'rwm' },
    { allow: true, type: 'c', major: 10, minor: 200, access: 'rwm' },
  ]);
  t.deepEqual(writes.slice(0, 3), [
    { file: 'devices.deny', value: 'a' },
    { file: 'devices.deny', value: 'a' },
    { file: 'devices.allow', value: 'c 10:200 rwm' },
  ]);
  const allowed = writes.slice(3).map((w) => `${w.file} ${w.value}`);
  t.deepEqual(allowed, [
    'devices.allow c *:* m',
    'devices.allow b *:* m',
    'devices.allow c 1:3 rwm',
    'devices.allow c 1:5 rwm',
    'devices.allow c 1:7 rwm',
    'devices.allow c 1:8 rwm',
    'devices.allow c 1:9 rwm',
    'devices.allow c 5:0 rwm',
    'devices.allow c 5:1 rwm',
    'devices.allow c 5:2 rwm',
    'devices.allow c 136:* rwm',
  ]);
  // With no rules in the spec the container still gets only the default set.
  t.deepEqual(planDeviceWrites(undefined)[0], { file: 'devices.deny', value: 'a' });
  t.is(planDeviceWrites(undefined).length, 12);
});

test('planV2 maps the same fields to unified files', (t) => {
  const plan = planV2({
    memory: { limit: 64 * MiB, reservation: 16 * MiB, swap: 96 * MiB, swappiness: 5 },
    cpu: { shares: 1024, quota: 50_000, period: 100_000, cpus: '0-1', mems: '0' },
    pids: { limit: 30 },
    blockIO: {
      weight: 500,
      weightDevice: [{ major: 8, minor: 0, weight: 1000 }],
      throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1000 }],
      throttleWriteIOPSDevice: [{ major: 8, minor: 0, rate: 0 }],
    },
    hugepageLimits: [{ pageSize: '1GB', limit: 0 }],
    unified: { 'memory.high': '50000000', 'cgroup.freeze': '0' },
  });
  t.deepEqual(
    plan.writes.map((w) => `${w.file}=${w.value}`),
    [
      `memory.max=${64 * MiB}`,
      `memory.swap.max=${32 * MiB}`,
      `memory.low=${16 * MiB}`,
      `cpu.weight=${sharesToWeight(1024)}`,
      'cpu.max=50000 100000',
      'cpuset.cpus=0-1',
      'cpuset.mems=0',
      'pids.max=30',
      'io.bfq.weight=500',
      'io.weight=8:0 10000',
      'io.max=8:0 rbps=1000',
      'io.max=8:0 wiops=max',
      'hugetlb.1GB.max=0',
      'memory.high=50000000',
      'cgroup.freeze=0',
    ],
  );
  t.deepEqual(plan.writes.find((w) => w.file === 'io.bfq.weight')?.alternatives, [{ file: 'io.weight', value: `default ${blkioToIoWeight(500)}` }]);
  t.deepEqual([...plan.controllers].sort(), ['cpu', 'cpuset', 'hugetlb', 'io', 'memory', 'pids']);
  t.true(plan.warnings.some((w) => /swappiness/.test(w)));
  t.false(
    plan.warnings.some((w) => /devices/.test(w)),
    'devices are enforced on v2 (a BPF program), not warned about',
  );
});

test('planV2 edge values: unlimited, quota without period, no swap by default, realtime refused', (t) => {
  const w = (r: LinuxResources) => planV2(r).writes.map((x) => `${x.file}=${x.value}${x.ifExists === true ? '?' : ''}`);
  t.deepEqual(w({ memory: { limit: 8 * MiB } }), [`memory.max=${8 * MiB}`, 'memory.swap.max=0?']);
  t.deepEqual(w({ memory: { limit: -1, swap: -1 } }), ['memory.max=max', 'memory.swap.max=max']);
  t.deepEqual(w({ cpu: { quota: 25_000 } }), ['cpu.max=25000 100000']);
  t.deepEqual(w({ cpu: { period: 50_000 } }), ['cpu.max=max 50000']);
  t.deepEqual(w({ memory: { reservation: -1 } }), ['memory.low=0']);
  t.throws(() => planV2({ cpu: { realtimeRuntime: 1000 } }), {
    message: /cpu\.realtimeRuntime\/realtimePeriod: real-time CPU bandwidth has no cgroup v2 interface/,
  });
});

test('shares and blkio weights convert like runc', (t) => {
  t.is(sharesToWeight(2), 1);
  t.is(sharesToWeight(1024), 39);
  t.is(sharesToWeight(262_144), 10_000);
  t.is(blkioToIoWeight(10), 1);
  t.is(blkioToIoWeight(500), 4950);
  t.is(blkioToIoWeight(1000), 10_000);
});

test('stats parsers read v1 and v2 files', (t) => {
  t.is(parseLimit('9223372036854771712\n'), undefined, 'v1 unlimited');
  t.is(parseLimit('max\n'), undefined, 'v2 unlimited');
  t.is(parseLimit('1048576\n'), 1_048_576);
  t.deepEqual(parsePerCpu('100 200 \n'), [100, 200]);
  const kv = parseKeyValues('oom_kill_disable 0\nunder_oom 0\noom_kill 2\n');
  t.is(kv.get('oom_kill'), 2);
  t.deepEqual(parseBlkio('254:0 Read 4096\n254:0 Write 8192\n254:0 Sync 0\nTotal 12288\n', '254:0 Read 1\n254:0 Write 2\nTotal 3\n'), [
    { major: 254, minor: 0, readBytes: 4096, writeBytes: 8192, readOps: 1, writeOps: 2 },
  ]);
  t.deepEqual(parseIoStat('8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=5 wbytes=0 rios=1 wios=0\n'), [
    { major: 8, minor: 0, readBytes: 10, writeBytes: 20, readOps: 1, writeOps: 2 },
    { major: 8, minor: 16, readBytes: 5, writeBytes: 0, readOps: 1, writeOps: 0 },
  ]);
});
