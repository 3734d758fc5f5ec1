// What one reading of a container is, and the figures tsctl top shows derived from two readings
// (pure). The readings are taken by container-reading.ts; the sampler pairs them.
import type { ContainerStats } from '../runtime/types.js';
import { workingSetBytes } from '../runtime/cgroups/stats-files.js';
import type { InterfaceCounters } from './net-dev.js';

export interface ContainerReading {
  /** Monotonic time of the reading, in ms (performance.now()). */
  atMs: number;
  stats: ContainerStats;
  /** Absent when the container's network counters could not be read (its process is gone). */
  network?: InterfaceCounters;
  /** The same counters per interface (loopback included), for metrics labelled by interface. */
  interfaces?: ReadonlyMap<string, InterfaceCounters>;
  /** The container's init process, as the runtime reported it. */
  pid?: number;
}

/** One task's row, as the node sends it (proto TaskUsage). */
export interface TaskUsage {
  task: string;
  cpuPercent: number;
  cpuUsageNanos: number;
  memoryUsageBytes: number;
  /** 0: no limit. */
  memoryLimitBytes: number;
  networkRxBytes: number;
  networkTxBytes: number;
  blockReadBytes: number;
  blockWriteBytes: number;
  pids: number;
}

/**
 * CPU use between two readings, in percent of one CPU (200 = two CPUs busy), as docker stats
 * reports it. A counter that went backwards (a new container under the same id) gives 0.
 */
export function cpuPercent(before: ContainerReading, after: ContainerReading): number {
  const elapsedNanos = (after.atMs - before.atMs) * 1e6;
  const used = after.stats.cpu.usageNanos - before.stats.cpu.usageNanos;
  if (!(elapsedNanos > 0) || used <= 0) return 0;
  return (used / elapsedNanos) * 100;
}

/** The row of one task from its two readings: rates from the pair, everything else from the later one. */
export function taskUsage(task: string, before: ContainerReading, after: ContainerReading): TaskUsage {
  const { stats } = after;
  let blockReadBytes = 0;
  let blockWriteBytes = 0;
  for (const device of stats.blockIO.devices) {
    blockReadBytes += device.readBytes;
    blockWriteBytes += device.writeBytes;
  }
  return {
    task,
    cpuPercent: cpuPercent(before, after),
    cpuUsageNanos: stats.cpu.usageNanos,
    memoryUsageBytes: workingSetBytes(stats.memory),
    memoryLimitBytes: stats.memory.limitBytes ?? 0,
    networkRxBytes: after.network?.rxBytes ?? 0,
    networkTxBytes: after.network?.txBytes ?? 0,
    blockReadBytes,
    blockWriteBytes,
    pids: stats.pids.current,
  };
}
