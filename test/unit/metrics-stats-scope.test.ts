// The cgroup drivers' `metrics` scope (agent/runtime/cgroups/stats-files.ts): reading only the
// files the container families use gives the very series a full read gives, on v1 (hybrid hosts)
// and v2. The cgroup directories are plain temporary directories holding sample control files:
// the drivers read them as they read /sys/fs/cgroup (a real cgroup is test/integration/node-metrics.test.ts).
import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CgroupsV1 } from '../../agent/runtime/cgroups/v1.js';
import { CgroupsV2 } from '../../agent/runtime/cgroups/v2.js';
import { containerSamples } from '../../agent/stats/container-series.js';

const V1_FILES: Record<string, string> = {
  'memory.stat': 'total_cache 8388608\ntotal_rss 33554432\ntotal_inactive_file 6291456\n',
  'memory.usage_in_bytes': '44040192\n',
  'memory.limit_in_bytes': '67108864\n',
  'memory.max_usage_in_bytes': '50000000\n',
  'memory.failcnt': '2\n',
  'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 3\n',
  'cpu.stat': 'nr_periods 120\nnr_throttled 17\nthrottled_time 912345678\n',
  'cpu.shares': '1024\n',
  'cpuacct.usage': '2500000000\n',
  'cpuacct.usage_user': '2000000000\n',
  'pids.current': '4\n',
  'pids.max': 'max\n',
  'blkio.throttle.read_bps_device': '',
  'blkio.throttle.io_service_bytes_recursive': '254:0 Read 4096\n254:0 Write 16777216\nTotal 16781312\n',
  'blkio.throttle.io_service_bytes': '254:0 Read 1\n254:0 Write 1\n',
};

const V2_FILES: Record<string, string> = {
  'memory.current': '44040192\n',
  'memory.max': '67108864\n',
  'memory.peak': '50000000\n',
  'memory.stat': 'anon 33554432\nfile 8388608\ninactive_file 6291456\n',
  'memory.events': 'max 5\noom_kill 3\n',
  'cpu.stat': 'usage_usec 2500000\nuser_usec 2000000\nnr_periods 120\nnr_throttled 17\n',
  'pids.current': '4\n',
  'pids.max': '100\n',
  'io.stat': '254:0 rbytes=4096 wbytes=16777216\n',
};

async function cgroupDir(t: { teardown(f: () => unknown): void }, files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-stats-scope-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

for (const version of ['v1', 'v2'] as const) {
  test(`${version}: the metrics scope gives the series a full read gives, without the files only tsctl top uses`, async (t) => {
    const dir = await cgroupDir(t, version === 'v1' ? V1_FILES : V2_FILES);
    const driver = version === 'v1' ? new CgroupsV1(dir) : new CgroupsV2(dir);
    const record = { dirs: [dir], createdDirs: [] };
    const all = await driver.stats(record, 'all');
    const metrics = await driver.stats(record, 'metrics');
    const series = (stats: typeof all) => containerSamples({ task: 't' }, { atMs: 0, stats }, 1);
    t.deepEqual(series(metrics), series(all));
    t.is(all.memory.maxUsageBytes, 50_000_000, 'the full read has the peak');
    t.is(metrics.memory.maxUsageBytes, undefined, 'the metrics read did not read the peak file');
    t.is(metrics.pids.limit, undefined);
    t.is(metrics.cpu.throttledPeriods, 17);
    t.deepEqual(
      metrics.blockIO.devices.map((d) => [d.readBytes, d.writeBytes]),
      [[4096, 16_777_216]],
      'the recursive blkio file, not its fallback',
    );
  });
}
