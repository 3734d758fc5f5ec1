// One reading of a running container: its cgroup's counters (through the runtime, which knows
// where its cgroup is on v1, hybrid and v2 hosts) and its network counters from
// /proc/<init pid>/net/dev (the container's own network namespace).
import { performance } from 'node:perf_hooks';

import type { ContainerRuntime, ContainerStats } from '../runtime/types.js';
import { readKernelFile } from './kernel-file.js';
import { networkTotals, parseNetDev } from './net-dev.js';
import type { ContainerReading } from './usage.js';

export type StatsRuntime = Pick<ContainerRuntime, 'state' | 'stats' | 'metricsReading'>;

/** /proc/net/dev of a container has a few lines; more than this is not read. */
const MAX_NET_DEV_BYTES = 64 * 1024;

export async function readContainer(runtime: StatsRuntime, containerId: string, procRoot = '/proc'): Promise<ContainerReading> {
  const atMs = performance.now();
  const { pid, stats } = await runningStats(runtime, containerId);
  // The process may have ended since its state was read: then there are no counters to show.
  const netDev = readKernelFile(`${procRoot}/${pid}/net/dev`, MAX_NET_DEV_BYTES);
  const interfaces = netDev === undefined ? undefined : parseNetDev(netDev);
  return {
    atMs,
    stats,
    pid,
    ...(interfaces === undefined ? {} : { network: networkTotals(interfaces), interfaces }),
  };
}

/** The running container's pid and counters: in one look when the runtime can (metricsReading), else state() then stats(). */
async function runningStats(runtime: StatsRuntime, containerId: string): Promise<{ pid: number; stats: ContainerStats }> {
  if (runtime.metricsReading !== undefined) {
    const reading = await runtime.metricsReading(containerId);
    if (reading === undefined) throw new Error(`container ${containerId} does not exist`);
    if (reading.stats === undefined) throw new Error(`container ${containerId} is ${reading.status}`);
    return { pid: reading.pid, stats: reading.stats };
  }
  if (runtime.stats === undefined) throw new Error('this node’s container runtime reports no statistics');
  const state = await runtime.state(containerId);
  if (state === undefined) throw new Error(`container ${containerId} does not exist`);
  if (state.status !== 'running') throw new Error(`container ${containerId} is ${state.status}`);
  return { pid: state.pid, stats: await runtime.stats(containerId) };
}
