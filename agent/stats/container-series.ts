// A running task's container as Prometheus series with cAdvisor's names, units and labels (pure),
// so that dashboards and alerts written for cAdvisor work on Tessera's nodes: `name`, `image` and
// `container_label_*` as cAdvisor gives them, plus which node, stack, service, task and slot.
// container-metrics.ts reads the containers and publishes these (as text, container-text.ts) on each scrape.
import type { Task } from '../../common/resources/types.js';
import { workingSetBytes } from '../runtime/cgroups/stats-files.js';
import type { ContainerReading } from './usage.js';

export type SeriesLabels = Record<string, string>;

export interface Sample {
  labels: SeriesLabels;
  value: number;
}

export type ContainerMetricName = (typeof CONTAINER_METRICS)[number]['name'];

/** The families, in cAdvisor's names and units; `type` as Prometheus declares it. */
export const CONTAINER_METRICS = [
  { name: 'container_cpu_usage_seconds_total', type: 'counter', help: 'Cumulative CPU time consumed by the container, in seconds.' },
  { name: 'container_cpu_cfs_throttled_periods_total', type: 'counter', help: 'Number of CFS periods in which the container was throttled.' },
  {
    name: 'container_memory_working_set_bytes',
    type: 'gauge',
    help: 'Memory in use that cannot be dropped at once: usage minus inactive file pages, in bytes.',
  },
  { name: 'container_memory_rss', type: 'gauge', help: 'Anonymous memory of the container (RSS), in bytes.' },
  { name: 'container_memory_usage_bytes', type: 'gauge', help: 'Memory charged to the container, page cache included, in bytes.' },
  { name: 'container_spec_memory_limit_bytes', type: 'gauge', help: "The container's memory limit in bytes; 0 when it has none." },
  { name: 'container_oom_events_total', type: 'counter', help: 'Processes of the container killed by the out-of-memory killer.' },
  { name: 'container_network_receive_bytes_total', type: 'counter', help: "Bytes received on an interface of the container's network namespace." },
  { name: 'container_network_transmit_bytes_total', type: 'counter', help: "Bytes sent on an interface of the container's network namespace." },
  { name: 'container_fs_reads_bytes_total', type: 'counter', help: 'Bytes the container read from a block device.' },
  { name: 'container_fs_writes_bytes_total', type: 'counter', help: 'Bytes the container wrote to a block device.' },
  { name: 'container_processes', type: 'gauge', help: 'Processes (and threads) in the container.' },
  { name: 'container_start_time_seconds', type: 'gauge', help: "When the container's process started, in seconds since the epoch." },
] as const;

/** Service labels become at most this many `container_label_*` labels (series size stays bounded). */
export const MAX_CONTAINER_LABELS = 32;
/** A label name longer than this (after the prefix) is left out; a value longer is cut. */
export const MAX_LABEL_NAME_CHARS = 100;
export const MAX_LABEL_VALUE_CHARS = 256;

/**
 * A container label as a Prometheus label name, as cAdvisor writes it: `container_label_` and the
 * key with every character outside [a-zA-Z0-9_] made `_` (com.example/tier → container_label_com_example_tier).
 */
export function containerLabelName(key: string): string {
  return `container_label_${key.replace(/[^a-zA-Z0-9_]/g, '_')}`;
}

/**
 * The `container_label_*` labels of a container's labels: sorted by key so that, when two keys
 * sanitise to one name or there are too many, which one is kept does not depend on map order.
 * Keys too long are left out rather than cut, so two long keys cannot merge into one name.
 */
export function containerLabels(labels: Readonly<Record<string, string>> | undefined): SeriesLabels {
  const out: SeriesLabels = {};
  let count = 0;
  for (const key of Object.keys(labels ?? {}).sort()) {
    if (count >= MAX_CONTAINER_LABELS) break;
    if (key.length === 0 || key.length > MAX_LABEL_NAME_CHARS) continue;
    const name = containerLabelName(key);
    if (name in out) continue;
    out[name] = (labels![key] ?? '').slice(0, MAX_LABEL_VALUE_CHARS);
    count++;
  }
  return out;
}

/** The labels every series of one task's container carries. */
export function taskLabels(task: Task, containerName: string, node: string): SeriesLabels {
  const spec = task.spec;
  return {
    ...containerLabels(spec.spec.containerLabels),
    // Set after the container labels: a label key cannot stand in for these (their names have no prefix anyway).
    name: containerName,
    image: spec.spec.image,
    node,
    stack: spec.serviceStack,
    service: spec.serviceName,
    task: task.metadata.name,
    slot: String(spec.slot),
  };
}

/** Receives one value of one family; `extra` labels (interface, device) follow the container's. */
export type ValueSink = (name: ContainerMetricName, value: number, extra?: SeriesLabels) => void;

/**
 * Every family's values for one container reading, in the families' order, to `emit`. The one
 * place that says which counter feeds which family: the samples below and the exposition text
 * (container-text.ts) are both written from it. Values that are missing or not finite are left out.
 */
export function containerValues(reading: ContainerReading, startSeconds: number | undefined, emit: ValueSink): void {
  const { stats } = reading;
  const add = (name: ContainerMetricName, value: number | undefined, extra?: SeriesLabels) => {
    if (value !== undefined && Number.isFinite(value)) emit(name, value, extra);
  };
  add('container_cpu_usage_seconds_total', stats.cpu.usageNanos / 1e9);
  add('container_cpu_cfs_throttled_periods_total', stats.cpu.throttledPeriods);
  add('container_memory_working_set_bytes', workingSetBytes(stats.memory));
  add('container_memory_rss', stats.memory.rssBytes);
  add('container_memory_usage_bytes', stats.memory.usageBytes);
  add('container_spec_memory_limit_bytes', stats.memory.limitBytes ?? 0);
  add('container_oom_events_total', stats.memory.oomKills);
  for (const [name, counters] of reading.interfaces ?? []) {
    // cAdvisor leaves loopback out: traffic inside the container is not the container's traffic.
    if (name === 'lo') continue;
    add('container_network_receive_bytes_total', counters.rxBytes, { interface: name });
    add('container_network_transmit_bytes_total', counters.txBytes, { interface: name });
  }
  for (const device of stats.blockIO.devices) {
    const extra = { device: `${device.major}:${device.minor}` };
    add('container_fs_reads_bytes_total', device.readBytes, extra);
    add('container_fs_writes_bytes_total', device.writeBytes, extra);
  }
  add('container_processes', stats.pids.current);
  add('container_start_time_seconds', startSeconds);
}

/** Every family's samples for one container reading. */
export function containerSamples(labels: SeriesLabels, reading: ContainerReading, startSeconds: number | undefined): Map<ContainerMetricName, Sample[]> {
  const out = new Map<ContainerMetricName, Sample[]>();
  containerValues(reading, startSeconds, (name, value, extra) => {
    let list = out.get(name);
    if (list === undefined) out.set(name, (list = []));
    list.push({ labels: extra === undefined ? { ...labels } : { ...labels, ...extra }, value });
  });
  return out;
}
