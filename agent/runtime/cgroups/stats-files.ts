// A container's stats from the contents of its cgroup files (pure): the drivers read the files
// listed here and hand their contents over, so each kernel format is tested on sample text.
// tsctl top and later metrics read the same numbers through the runtime's stats().

import type { ContainerStats } from '../types.js';
import { parseBlkio, parseIoStat, parseKeyValues, parseLimit, parseNumber, parsePerCpu } from './stats-parse.js';

/** File name → its content; a file the kernel does not have (or could not be read as absent) has no entry. */
export type StatFiles = ReadonlyMap<string, string>;

/** v1: the hierarchy (as the driver finds its directory) and the file. File names are unique across them. */
export const V1_STAT_FILES = [
  ['memory', 'memory.stat'],
  ['memory', 'memory.usage_in_bytes'],
  ['memory', 'memory.limit_in_bytes'],
  ['memory', 'memory.max_usage_in_bytes'],
  ['memory', 'memory.memsw.usage_in_bytes'],
  ['memory', 'memory.failcnt'],
  ['memory', 'memory.memsw.failcnt'],
  ['memory', 'memory.oom_control'],
  ['cpu', 'cpu.stat'],
  ['cpuacct', 'cpuacct.usage'],
  ['cpuacct', 'cpuacct.usage_user'],
  ['cpuacct', 'cpuacct.usage_sys'],
  ['cpuacct', 'cpuacct.usage_percpu'],
  ['pids', 'pids.current'],
  ['pids', 'pids.max'],
  // Machines differ: the throttle files are the ones every blk-mq kernel has (../shared/ENVIRONMENT.md).
  ['blkio', 'blkio.throttle.io_service_bytes_recursive'],
  ['blkio', 'blkio.throttle.io_service_bytes'],
  ['blkio', 'blkio.throttle.io_serviced_recursive'],
  ['blkio', 'blkio.throttle.io_serviced'],
] as const;

export type V1StatController = (typeof V1_STAT_FILES)[number][0];

/**
 * What a stats read is for: `all` (tsctl top, the API) or `metrics`, the files the Prometheus
 * container families use (agent/stats/container-series.ts) and no more: a scrape reads them for
 * every running container, so each file left out is ~100 reads fewer per scrape on a busy node.
 */
export type StatsScope = 'all' | 'metrics';

export const V1_METRICS_FILES: ReadonlySet<string> = new Set([
  'memory.stat',
  'memory.usage_in_bytes',
  'memory.limit_in_bytes',
  'memory.oom_control',
  'cpu.stat',
  'cpuacct.usage',
  'pids.current',
  'blkio.throttle.io_service_bytes_recursive',
  'blkio.throttle.io_service_bytes',
]);

export const V2_METRICS_FILES: ReadonlySet<string> = new Set([
  'memory.current',
  'memory.max',
  'memory.stat',
  'memory.events',
  'cpu.stat',
  'pids.current',
  'io.stat',
]);

/** A v1 file only read when the one before it is missing (the parse takes the first that is there). */
export const V1_FALLBACK_OF: ReadonlyMap<string, string> = new Map([
  ['blkio.throttle.io_service_bytes', 'blkio.throttle.io_service_bytes_recursive'],
  ['blkio.throttle.io_serviced', 'blkio.throttle.io_serviced_recursive'],
]);

/** v2: every file is in the container's one directory. */
export const V2_STAT_FILES = [
  'memory.current',
  'memory.max',
  'memory.peak',
  'memory.stat',
  'memory.swap.current',
  'memory.events',
  'cpu.stat',
  'pids.current',
  'pids.max',
  'io.stat',
] as const;

export function statsFromV1Files(files: StatFiles): ContainerStats {
  const memStat = parseKeyValues(files.get('memory.stat'));
  const usage = parseNumber(files.get('memory.usage_in_bytes')) ?? 0;
  const memsw = parseNumber(files.get('memory.memsw.usage_in_bytes'));
  const cpuStat = parseKeyValues(files.get('cpu.stat'));
  return {
    cgroupVersion: 'v1',
    memory: dropUndefined({
      usageBytes: usage,
      limitBytes: parseLimit(files.get('memory.limit_in_bytes')),
      maxUsageBytes: parseNumber(files.get('memory.max_usage_in_bytes')),
      cacheBytes: memStat.get('total_cache') ?? memStat.get('cache'),
      rssBytes: memStat.get('total_rss') ?? memStat.get('rss'),
      inactiveFileBytes: memStat.get('total_inactive_file') ?? memStat.get('inactive_file'),
      swapBytes: memsw === undefined ? undefined : Math.max(0, memsw - usage),
      // With memsw = limit the memory+swap counter is charged first and fails first.
      failCount: maxDefined(parseNumber(files.get('memory.failcnt')), parseNumber(files.get('memory.memsw.failcnt'))),
      oomKills: parseKeyValues(files.get('memory.oom_control')).get('oom_kill') ?? 0,
    }),
    cpu: dropUndefined({
      usageNanos: parseNumber(files.get('cpuacct.usage')) ?? 0,
      userNanos: parseNumber(files.get('cpuacct.usage_user')),
      systemNanos: parseNumber(files.get('cpuacct.usage_sys')),
      perCpuNanos: parsePerCpu(files.get('cpuacct.usage_percpu')),
      periods: cpuStat.get('nr_periods'),
      throttledPeriods: cpuStat.get('nr_throttled'),
      throttledNanos: cpuStat.get('throttled_time'),
    }),
    pids: dropUndefined({
      current: parseNumber(files.get('pids.current')) ?? 0,
      limit: parseLimit(files.get('pids.max')),
    }),
    blockIO: {
      devices: parseBlkio(
        files.get('blkio.throttle.io_service_bytes_recursive') ?? files.get('blkio.throttle.io_service_bytes'),
        files.get('blkio.throttle.io_serviced_recursive') ?? files.get('blkio.throttle.io_serviced'),
      ),
    },
  };
}

export function statsFromV2Files(files: StatFiles): ContainerStats {
  const memStat = parseKeyValues(files.get('memory.stat'));
  const events = parseKeyValues(files.get('memory.events'));
  const cpuStat = parseKeyValues(files.get('cpu.stat'));
  const micros = (key: string) => {
    const v = cpuStat.get(key);
    return v === undefined ? undefined : v * 1000;
  };
  return {
    cgroupVersion: 'v2',
    memory: dropUndefined({
      usageBytes: parseNumber(files.get('memory.current')) ?? 0,
      limitBytes: parseLimit(files.get('memory.max')),
      maxUsageBytes: parseNumber(files.get('memory.peak')),
      cacheBytes: memStat.get('file'),
      rssBytes: memStat.get('anon'),
      inactiveFileBytes: memStat.get('inactive_file'),
      swapBytes: parseNumber(files.get('memory.swap.current')),
      failCount: events.get('max'),
      oomKills: events.get('oom_kill') ?? 0,
    }),
    cpu: dropUndefined({
      usageNanos: micros('usage_usec') ?? 0,
      userNanos: micros('user_usec'),
      systemNanos: micros('system_usec'),
      periods: cpuStat.get('nr_periods'),
      throttledPeriods: cpuStat.get('nr_throttled'),
      throttledNanos: micros('throttled_usec'),
    }),
    pids: dropUndefined({
      current: parseNumber(files.get('pids.current')) ?? 0,
      limit: parseLimit(files.get('pids.max')),
    }),
    blockIO: { devices: parseIoStat(files.get('io.stat')) },
  };
}

/**
 * Memory in use as docker stats shows it: usage minus the inactive file pages the kernel can drop
 * at once (v1 total_inactive_file, v2 inactive_file), never below 0. Without the figure, usage.
 */
export function workingSetBytes(memory: ContainerStats['memory']): number {
  return Math.max(0, memory.usageBytes - (memory.inactiveFileBytes ?? 0));
}

function maxDefined(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  return b === undefined ? a : Math.max(a, b);
}

/** Leaves out undefined fields so results compare and serialise cleanly. */
function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
