// tsctl top on the agent: the cgroup stat files of v1 (hybrid hosts) and v2 turned into stats,
// /proc/PID/net/dev, CPU % from two readings, the sampler's pairing and sharing, and the answer a
// node gives a manager's TopRequest. Pure functions on sample file contents (copied in shape from
// this machine's hybrid hierarchy and from a pure-v2 Debian 12 host); the sampler runs against a
// stand-in runtime and a scratch /proc, since a real container is the e2e test's business
// (test/e2e/top-across-nodes.test.ts).
import test from 'ava';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { statsFromV1Files, statsFromV2Files, workingSetBytes, V1_STAT_FILES, V2_STAT_FILES } from '../../agent/runtime/cgroups/stats-files.js';
import { networkTotals, parseNetDev } from '../../agent/stats/net-dev.js';
import { cpuPercent, taskUsage, type ContainerReading } from '../../agent/stats/usage.js';
import { UsageSampler } from '../../agent/stats/usage-sampler.js';
import { topAnswerFor, topRequestProblem, MAX_TOP_TASKS } from '../../agent/session/top-requests.js';
import type { ContainerState, ContainerStats } from '../../agent/runtime/types.js';

const MiB = 1024 * 1024;

const V1_FILES = new Map<string, string>([
  [
    'memory.stat',
    'cache 12324864\nrss 6213632\ninactive_file 225280\nhierarchical_memory_limit 67108864\n' +
      'total_cache 8388608\ntotal_rss 33554432\ntotal_inactive_file 6291456\ntotal_active_file 2097152\n',
  ],
  ['memory.usage_in_bytes', '44040192\n'],
  ['memory.limit_in_bytes', '67108864\n'],
  ['memory.max_usage_in_bytes', '50331648\n'],
  ['memory.failcnt', '0\n'],
  ['memory.oom_control', 'oom_kill_disable 0\nunder_oom 0\noom_kill 0\n'],
  ['cpu.stat', 'nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n'],
  ['cpuacct.usage', '2500000000\n'],
  ['cpuacct.usage_user', '2000000000\n'],
  ['cpuacct.usage_sys', '500000000\n'],
  ['cpuacct.usage_percpu', '1250000000 1250000000 \n'],
  ['pids.current', '2\n'],
  ['pids.max', 'max\n'],
  // This machine's disk has only the throttle files (../shared/ENVIRONMENT.md).
  [
    'blkio.throttle.io_service_bytes_recursive',
    '254:0 Read 4096\n254:0 Write 16777216\n254:0 Sync 16781312\n254:0 Async 0\n254:0 Discard 0\n254:0 Total 16781312\nTotal 16781312\n',
  ],
  ['blkio.throttle.io_serviced_recursive', '254:0 Read 1\n254:0 Write 16\nTotal 17\n'],
]);

const V2_FILES = new Map<string, string>([
  ['memory.current', '44040192\n'],
  ['memory.max', 'max\n'],
  ['memory.peak', '50331648\n'],
  ['memory.stat', 'anon 33554432\nfile 8388608\nkernel 1048576\nactive_anon 0\ninactive_anon 33554432\nactive_file 2097152\ninactive_file 6291456\n'],
  ['memory.swap.current', '0\n'],
  ['memory.events', 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n'],
  ['cpu.stat', 'usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n'],
  ['pids.current', '2\n'],
  ['pids.max', '64\n'],
  ['io.stat', '254:0 rbytes=4096 wbytes=16777216 rios=1 wios=16 dbytes=0 dios=0\n7:0 rbytes=1024 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n'],
]);

test('v1 (and hybrid) files: usage, limit, inactive_file, cpuacct ns, pids, throttle block I/O', (t) => {
  const stats = statsFromV1Files(V1_FILES);
  t.is(stats.cgroupVersion, 'v1');
  t.like(stats.memory, {
    usageBytes: 42 * MiB,
    limitBytes: 64 * MiB,
    maxUsageBytes: 48 * MiB,
    cacheBytes: 8 * MiB,
    rssBytes: 32 * MiB,
    inactiveFileBytes: 6 * MiB,
  });
  t.is(workingSetBytes(stats.memory), 36 * MiB, 'usage minus total_inactive_file, as docker stats shows');
  t.deepEqual(stats.cpu, {
    usageNanos: 2.5e9,
    userNanos: 2e9,
    systemNanos: 5e8,
    perCpuNanos: [1.25e9, 1.25e9],
    periods: 0,
    throttledPeriods: 0,
    throttledNanos: 0,
  });
  t.deepEqual(stats.pids, { current: 2 }, 'pids.max "max" is no limit');
  t.deepEqual(stats.blockIO.devices, [{ major: 254, minor: 0, readBytes: 4096, writeBytes: 16 * MiB, readOps: 1, writeOps: 16 }]);
  // Only the non-recursive files (older kernels' layout), and no limit (v1's page-rounded LLONG_MAX).
  const older = new Map(V1_FILES);
  older.delete('blkio.throttle.io_service_bytes_recursive');
  older.set('blkio.throttle.io_service_bytes', '8:0 Read 512\n8:0 Write 0\nTotal 512\n');
  older.set('memory.limit_in_bytes', '9223372036854771712\n');
  const olderStats = statsFromV1Files(older);
  t.is(olderStats.blockIO.devices[0]?.readBytes, 512);
  t.is(olderStats.memory.limitBytes, undefined);
});

test('v2 files: memory.current/max, inactive_file, cpu.stat usage_usec, pids, io.stat rbytes/wbytes', (t) => {
  const stats = statsFromV2Files(V2_FILES);
  t.is(stats.cgroupVersion, 'v2');
  t.like(stats.memory, { usageBytes: 42 * MiB, maxUsageBytes: 48 * MiB, cacheBytes: 8 * MiB, rssBytes: 32 * MiB, inactiveFileBytes: 6 * MiB, oomKills: 0 });
  t.is(stats.memory.limitBytes, undefined, '"max" is no limit');
  t.is(workingSetBytes(stats.memory), 36 * MiB);
  t.is(stats.cpu.usageNanos, 2.5e9, 'usage_usec in ns');
  t.deepEqual(stats.pids, { current: 2, limit: 64 });
  t.deepEqual(
    stats.blockIO.devices.map((d) => [d.major, d.readBytes, d.writeBytes]),
    [
      [254, 4096, 16 * MiB],
      [7, 1024, 0],
    ],
  );
});

test('missing files give zeros, not errors; the file lists name what the drivers read', (t) => {
  const empty = statsFromV2Files(new Map());
  t.deepEqual(empty.memory, { usageBytes: 0, oomKills: 0 });
  t.is(workingSetBytes({ usageBytes: 10, inactiveFileBytes: 20, oomKills: 0 }), 0, 'never below zero');
  t.deepEqual(statsFromV1Files(new Map()).blockIO.devices, []);
  for (const file of V1_FILES.keys())
    t.true(
      V1_STAT_FILES.some(([, f]) => f === file),
      `${file} is read on v1`,
    );
  for (const file of V2_FILES.keys()) t.true((V2_STAT_FILES as readonly string[]).includes(file), `${file} is read on v2`);
});

test('/proc/PID/net/dev: per interface, loopback left out of the totals', (t) => {
  const text =
    'Inter-|   Receive                                                |  Transmit\n' +
    ' face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n' +
    '    lo:    5000      50    0    0    0     0          0         0     5000      50    0    0    0     0       0          0\n' +
    '  eth0: 1048576     900    1    2    0     0          0         0    20480     300    3    4    0     0       0          0\n' +
    '  eth1:    1000      10    0    0    0     0          0         0      500       5    0    0    0     0       0          0\n' +
    '  bad: 1 2 3\n';
  const interfaces = parseNetDev(text);
  t.deepEqual([...interfaces.keys()], ['lo', 'eth0', 'eth1']);
  t.like(interfaces.get('eth0'), { rxBytes: 1048576, rxPackets: 900, rxErrors: 1, rxDropped: 2, txBytes: 20480, txPackets: 300, txErrors: 3, txDropped: 4 });
  t.like(networkTotals(interfaces), { rxBytes: 1049576, txBytes: 20980, rxPackets: 910 });
});

function reading(atMs: number, usageNanos: number, stats: Partial<ContainerStats> = {}): ContainerReading {
  return {
    atMs,
    stats: { ...statsFromV2Files(V2_FILES), ...stats, cpu: { usageNanos } },
    network: { rxBytes: 10, txBytes: 20, rxPackets: 0, rxErrors: 0, rxDropped: 0, txPackets: 0, txErrors: 0, txDropped: 0 },
  };
}

test('CPU %: CPU time used over wall time between two readings, 100 per busy CPU', (t) => {
  t.is(cpuPercent(reading(0, 0), reading(1000, 1e9)), 100);
  t.is(cpuPercent(reading(0, 0), reading(1000, 2e9)), 200);
  t.is(Math.round(cpuPercent(reading(0, 1e9), reading(500, 1.05e9))), 10);
  t.is(cpuPercent(reading(0, 5e9), reading(1000, 1e9)), 0, 'a counter that went back (a new container) is not negative');
  t.is(cpuPercent(reading(1000, 0), reading(1000, 1e9)), 0, 'no time passed');
  const row = taskUsage('web.1', reading(0, 0), reading(1000, 5e8));
  t.deepEqual(row, {
    task: 'web.1',
    cpuPercent: 50,
    cpuUsageNanos: 5e8,
    memoryUsageBytes: 36 * MiB,
    memoryLimitBytes: 0,
    networkRxBytes: 10,
    networkTxBytes: 20,
    blockReadBytes: 4096 + 1024,
    blockWriteBytes: 16 * MiB,
    pids: 2,
  });
});

test('the sampler reads each running container twice, a window apart, and callers at the same time share one sampling', async (t) => {
  const proc = await mkdtemp(join(tmpdir(), 'tessera-top-proc-'));
  t.teardown(() => rm(proc, { recursive: true, force: true }));
  await mkdir(join(proc, '101', 'net'), { recursive: true });
  await writeFile(join(proc, '101', 'net', 'dev'), 'h\nh\n  eth0: 300 3 0 0 0 0 0 0 700 7 0 0 0 0 0 0\n');
  // A stand-in for the runtime (NativeRuntime needs real containers): "busy" uses half a CPU per
  // reading's worth of time, "gone" has no container, "idle" uses none.
  let statsCalls = 0;
  let busyNanos = 0;
  const states: Record<string, ContainerState | undefined> = {
    busy: { id: 'busy', pid: 101, status: 'running', bundle: '/b' },
    idle: { id: 'idle', pid: 999_999, status: 'running', bundle: '/b' },
  };
  const runtime = {
    state: (id: string) => Promise.resolve(states[id]),
    stats: (id: string) => {
      statsCalls++;
      if (id === 'busy') busyNanos += 50e6;
      return Promise.resolve({ ...statsFromV1Files(V1_FILES), cpu: { usageNanos: id === 'busy' ? busyNanos : 7 } });
    },
  };
  const sampler = new UsageSampler({
    runtime,
    sampleMs: 100,
    procRoot: proc,
    running: () => [
      { task: 'svc.1', containerId: 'busy' },
      { task: 'svc.2', containerId: 'idle' },
      { task: 'svc.3', containerId: 'gone' },
    ],
  });
  const [a, b] = await Promise.all([sampler.sample(), sampler.sample()]);
  t.is(a, b, 'one sampling for both callers');
  t.is(statsCalls, 4, 'two readings of the two containers that exist');
  t.is(a.sampleMs, 100);
  t.is(a.cgroupVersion, 'v1');
  const busy = a.tasks.find((r) => r.task === 'svc.1');
  t.truthy(busy);
  t.true(busy!.cpuPercent > 0 && busy!.cpuPercent <= 50, `50 ms of CPU over ≥100 ms: ${busy!.cpuPercent}`);
  t.like(busy, { networkRxBytes: 300, networkTxBytes: 700, memoryUsageBytes: 36 * MiB, memoryLimitBytes: 64 * MiB });
  t.like(
    a.tasks.find((r) => r.task === 'svc.2'),
    { cpuPercent: 0, networkRxBytes: 0 },
    'no /proc entry: no network figures, the rest is there',
  );
  t.deepEqual(a.failed, [{ task: 'svc.3', error: 'container gone does not exist' }]);
  await sampler.sample();
  t.is(statsCalls, 8, 'a later call samples anew');
});

test('a node answers only for the tasks asked, says which it does not run, and refuses oversized requests', (t) => {
  const sample = {
    tasks: [taskUsage('a.1', reading(0, 0), reading(1000, 1e9)), taskUsage('other.1', reading(0, 0), reading(1000, 1e9))],
    failed: [{ task: 'a.2', error: 'container a.2 is stopped' }],
    sampleMs: 1000,
    cgroupVersion: 'v2',
  };
  const answer = topAnswerFor({ requestId: 7, taskNames: ['a.1', 'a.2', 'a.3'] }, sample);
  t.is(answer.requestId, 7);
  t.deepEqual(
    answer.tasks?.map((u) => [u.task, u.error ?? '']),
    [
      ['a.1', ''],
      ['a.2', 'container a.2 is stopped'],
      ['a.3', 'no running container for this task on the node'],
    ],
  );
  t.is(topRequestProblem({ requestId: 1, taskNames: ['a.1'] }), undefined);
  t.regex(
    topRequestProblem({ requestId: 1, taskNames: Array.from({ length: MAX_TOP_TASKS + 1 }, (_, i) => `t${i}`) }) ?? '',
    /1001 tasks in one top request; at most 1000/,
  );
  t.regex(topRequestProblem({ requestId: 1, taskNames: ['x'.repeat(254)] }) ?? '', /empty or too long/);
  t.regex(topRequestProblem({ requestId: 1, taskNames: [''] }) ?? '', /empty or too long/);
});
