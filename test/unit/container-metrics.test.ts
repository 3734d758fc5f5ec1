// Container metrics in cAdvisor's names (agent/stats/container-series.ts, proc-start.ts): the
// counters cAdvisor publishes that tsctl top does not show (CFS throttled periods, RSS, OOM kills)
// parsed from v1 (hybrid hosts) and v2 sample text, the series one reading gives, and the labels
// with their sanitising and bounds. Pure but for a proc tree in a temporary directory; a real
// container is test/integration/node-metrics.test.ts.
import test from 'ava';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { statsFromV1Files, statsFromV2Files } from '../../agent/runtime/cgroups/stats-files.js';
import {
  containerLabelName,
  containerLabels,
  containerSamples,
  taskLabels,
  MAX_CONTAINER_LABELS,
  MAX_LABEL_VALUE_CHARS,
  CONTAINER_METRICS,
} from '../../agent/stats/container-series.js';
import { parseNetDev } from '../../agent/stats/net-dev.js';
import { bootTimeSeconds, parseBootTime, parseStartTicks, processStartSeconds, startSeconds } from '../../agent/stats/proc-start.js';
import type { ContainerReading } from '../../agent/stats/usage.js';
import type { Task } from '../../common/resources/types.js';

const MiB = 1024 * 1024;

// A throttled, OOM-killed container's files, in the shapes of this machine's hybrid hierarchy.
const V1 = new Map<string, string>([
  ['memory.stat', 'cache 1\nrss 2\ntotal_cache 8388608\ntotal_rss 33554432\ntotal_inactive_file 6291456\n'],
  ['memory.usage_in_bytes', '44040192\n'],
  ['memory.limit_in_bytes', '67108864\n'],
  ['memory.oom_control', 'oom_kill_disable 0\nunder_oom 0\noom_kill 3\n'],
  ['cpu.stat', 'nr_periods 120\nnr_throttled 17\nthrottled_time 912345678\n'],
  ['cpuacct.usage', '2500000000\n'],
  ['pids.current', '4\n'],
  ['blkio.throttle.io_service_bytes_recursive', '254:0 Read 4096\n254:0 Write 16777216\n254:0 Total 16781312\nTotal 16781312\n'],
]);

// The same on a pure v2 host (Debian 12's default).
const V2 = new Map<string, string>([
  ['memory.current', '44040192\n'],
  ['memory.max', 'max\n'],
  ['memory.stat', 'anon 33554432\nfile 8388608\ninactive_file 6291456\n'],
  ['memory.events', 'low 0\nhigh 0\nmax 5\noom 3\noom_kill 3\noom_group_kill 0\n'],
  ['cpu.stat', 'usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 120\nnr_throttled 17\nthrottled_usec 912345\n'],
  ['pids.current', '4\n'],
  ['io.stat', '254:0 rbytes=4096 wbytes=16777216 rios=1 wios=16 dbytes=0 dios=0\n'],
]);

const NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     500       5    0    0    0     0          0         0      500       5    0    0    0     0       0          0
  eth0:    1000      10    0    0    0     0          0         0     2000      20    0    0    0     0       0          0
  eth1:     300       3    0    0    0     0          0         0      400       4    0    0    0     0       0          0
`;

function task(labels?: Record<string, string>): Task {
  return {
    apiVersion: 'tessera/v1',
    kind: 'Task',
    metadata: { name: 'shop.web.2.abc123', stack: 'shop' },
    spec: {
      serviceName: 'web',
      serviceStack: 'shop',
      serviceGeneration: 1,
      slot: 2,
      spec: { image: 'nginx:1.25', ...(labels ? { containerLabels: labels } : {}) },
    },
    desiredState: 'running',
    status: { state: 'running', timestamp: new Date(0).toISOString() },
  } as Task;
}

const valueOf = (samples: ReturnType<typeof containerSamples>, name: string, extra: Record<string, string> = {}) =>
  samples.get(name as never)?.find((s) => Object.entries(extra).every(([k, v]) => s.labels[k] === v))?.value;

for (const [version, stats] of [
  ['v1', statsFromV1Files(V1)],
  ['v2', statsFromV2Files(V2)],
] as const) {
  test(`${version}: throttled periods, RSS, OOM kills and working set as cAdvisor defines them`, (t) => {
    t.is(stats.cpu.throttledPeriods, 17);
    t.is(stats.memory.rssBytes, 32 * MiB);
    t.is(stats.memory.oomKills, 3);
    const reading: ContainerReading = { atMs: 0, stats, interfaces: parseNetDev(NET_DEV) };
    const samples = containerSamples({ task: 't' }, reading, 1_700_000_000.5);
    t.is(valueOf(samples, 'container_cpu_usage_seconds_total'), 2.5);
    t.is(valueOf(samples, 'container_cpu_cfs_throttled_periods_total'), 17);
    // Working set: usage − inactive_file (42 MiB − 6 MiB).
    t.is(valueOf(samples, 'container_memory_working_set_bytes'), 36 * MiB);
    t.is(valueOf(samples, 'container_memory_usage_bytes'), 42 * MiB);
    t.is(valueOf(samples, 'container_memory_rss'), 32 * MiB);
    t.is(valueOf(samples, 'container_spec_memory_limit_bytes'), version === 'v1' ? 64 * MiB : 0, 'no limit is 0, as cAdvisor gives it');
    t.is(valueOf(samples, 'container_oom_events_total'), 3);
    t.is(valueOf(samples, 'container_fs_reads_bytes_total', { device: '254:0' }), 4096);
    t.is(valueOf(samples, 'container_fs_writes_bytes_total', { device: '254:0' }), 16 * MiB);
    t.is(valueOf(samples, 'container_processes'), 4);
    t.is(valueOf(samples, 'container_start_time_seconds'), 1_700_000_000.5);
    t.is(valueOf(samples, 'container_network_receive_bytes_total', { interface: 'eth0' }), 1000);
    t.is(valueOf(samples, 'container_network_transmit_bytes_total', { interface: 'eth1' }), 400);
    t.deepEqual(
      samples.get('container_network_receive_bytes_total')?.map((s) => s.labels['interface']),
      ['eth0', 'eth1'],
      'loopback is left out',
    );
    t.true(
      samples.get('container_network_receive_bytes_total')!.every((s) => s.labels['task'] === 't'),
      'every series carries the task labels',
    );
    for (const name of samples.keys()) t.truthy(CONTAINER_METRICS.find((m) => m.name === name));
  });
}

test('a file the kernel lacks leaves its series out instead of publishing a made-up 0', (t) => {
  const stats = statsFromV2Files(new Map([['memory.current', '100\n']]));
  const samples = containerSamples({}, { atMs: 0, stats }, undefined);
  t.is(samples.get('container_cpu_cfs_throttled_periods_total'), undefined);
  t.is(samples.get('container_memory_rss'), undefined);
  t.is(samples.get('container_start_time_seconds'), undefined);
  t.is(valueOf(samples, 'container_memory_usage_bytes'), 100);
});

test("labels: cAdvisor's name and image, the task's place, and container labels sanitised to label names", (t) => {
  const labels = taskLabels(task({ 'com.example/tier': 'front', 'team-name': 'shop', 'tessera.io/x': 'y' }), 'shop.web.2.abc123', 'node-1');
  t.deepEqual(labels, {
    container_label_com_example_tier: 'front',
    container_label_team_name: 'shop',
    container_label_tessera_io_x: 'y',
    name: 'shop.web.2.abc123',
    image: 'nginx:1.25',
    node: 'node-1',
    stack: 'shop',
    service: 'web',
    task: 'shop.web.2.abc123',
    slot: '2',
  });
  t.is(containerLabelName('a.b-c/d:e f'), 'container_label_a_b_c_d_e_f');
  for (const name of Object.keys(labels)) t.regex(name, /^[a-zA-Z_][a-zA-Z0-9_]*$/);
});

test('labels: bounded in number and length; of two keys that sanitise alike, the first in order stays', (t) => {
  const many = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${String(i).padStart(3, '0')}`, 'v']));
  t.is(Object.keys(containerLabels(many)).length, MAX_CONTAINER_LABELS);
  t.truthy(containerLabels(many)['container_label_k000']);
  const long = containerLabels({ ['x'.repeat(101)]: 'gone', big: 'v'.repeat(10_000) });
  t.deepEqual(Object.keys(long), ['container_label_big']);
  t.is(long['container_label_big']!.length, MAX_LABEL_VALUE_CHARS);
  t.deepEqual(containerLabels({ 'a.b': '1', 'a-b': '2' }), { container_label_a_b: '2' }, "'a-b' sorts before 'a.b'");
  t.deepEqual(containerLabels(undefined), {});
});

test('start time: /proc/PID/stat field 22 after a command name with spaces and parentheses, plus btime', (t) => {
  // Fields after "(comm)": state is field 3, starttime field 22.
  const fields = ['S', ...Array.from({ length: 18 }, (_, i) => String(i + 4)), '123456', '0', '0'];
  const stat = `4242 (sh (x) y) ${fields.join(' ')}\n`;
  t.is(parseStartTicks(stat), 123456);
  t.is(parseBootTime('cpu 1 2 3\nbtime 1765000000\nprocesses 5\n'), 1765000000);
  t.is(startSeconds(stat, 'btime 1765000000\n'), 1765000000 + 1234.56);
  t.is(parseStartTicks('garbage'), undefined);
  t.is(startSeconds(stat, 'no boot time'), undefined);
});

test('start time from a proc tree: the boot time a caller passes is asked only for a process that is there', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'tessera-proc-start-'));
  try {
    const fields = ['S', ...Array.from({ length: 18 }, (_, i) => String(i + 4)), '500', '0', '0'];
    await mkdir(join(root, '77'));
    await writeFile(join(root, '77', 'stat'), `77 (sleep) ${fields.join(' ')}\n`);
    await writeFile(join(root, 'stat'), 'cpu 1 2 3\nbtime 1765000000\n');
    t.is(await processStartSeconds(77, root), 1765000000 + 5, 'reads /proc/stat itself when not given the boot time');
    let asked = 0;
    const bootTime = () => {
      asked++;
      return Promise.resolve(1700000000);
    };
    t.is(await processStartSeconds(77, root, bootTime), 1700000000 + 5);
    t.is(await processStartSeconds(78, root, bootTime), undefined, 'a process that has gone has no start');
    t.is(asked, 1);
    t.is(await bootTimeSeconds(root), 1765000000);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
