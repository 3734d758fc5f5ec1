// The node's running task containers as Prometheus metrics (cAdvisor's families, container-series.ts)
// in the registry tsd serves on /metrics. Nothing is kept between scrapes: each scrape reads the
// containers that run now and publishes exactly their series, so a removed task's series are gone
// at the next scrape. One reading serves every family of one scrape (prom-client asks the families
// one by one, concurrently), and readings are shared by scrapes that come at once.
import * as client from 'prom-client';

import type { Task } from '../../common/resources/types.js';
import { errorMessage } from '../fs-errors.js';
import { readContainer, type StatsRuntime } from './container-reading.js';
import { CONTAINER_METRICS, containerSamples, taskLabels, type ContainerMetricName, type Sample } from './container-series.js';
import { bootTimeSeconds, processStartSeconds } from './proc-start.js';

export interface RunningTaskContainer {
  task: Task;
  containerId: string;
}

export interface ContainerMetricsDeps {
  runtime: StatsRuntime;
  /** The node's task containers that run now. */
  running: () => RunningTaskContainer[];
  node: string;
  log: (message: string) => void;
  procRoot?: string;
}

type Snapshot = Map<ContainerMetricName, Sample[]>;

/** A reading this recent is served again: the families of one scrape ask within the same few ms. */
const REUSE_MS = 500;

export class ContainerMetrics {
  private latest: { at: number; snapshot: Promise<Snapshot> } | undefined;

  constructor(private readonly deps: ContainerMetricsDeps) {}

  /** Adds the container families to `registry`; every value is computed at scrape time. */
  register(registry: client.Registry): void {
    for (const family of CONTAINER_METRICS) {
      const samples = async () => (await this.snapshot()).get(family.name) ?? [];
      const options = { name: family.name, help: family.help, registers: [registry] };
      if (family.type === 'counter') new SnapshotCounter(options, samples);
      else new SnapshotGauge(options, samples);
    }
  }

  /** One reading of every running container, shared by the callers of the next REUSE_MS. */
  snapshot(): Promise<Snapshot> {
    const now = Date.now();
    if (this.latest === undefined || now - this.latest.at > REUSE_MS) this.latest = { at: now, snapshot: this.read() };
    return this.latest.snapshot;
  }

  private async read(): Promise<Snapshot> {
    const { deps } = this;
    const merged: Snapshot = new Map();
    const failures: string[] = [];
    // /proc/stat's boot time, read once for the whole scrape (not before a container needs it).
    let boot: Promise<number | undefined> | undefined;
    const bootTime = () => (boot ??= bootTimeSeconds(deps.procRoot));
    await Promise.all(
      deps.running().map(async ({ task, containerId }) => {
        try {
          const reading = await readContainer(deps.runtime, containerId, deps.procRoot);
          const start = reading.pid === undefined ? undefined : await processStartSeconds(reading.pid, deps.procRoot, bootTime);
          for (const [name, samples] of containerSamples(taskLabels(task, containerId, deps.node), reading, start)) {
            const list = merged.get(name);
            if (list) list.push(...samples);
            else merged.set(name, samples);
          }
        } catch (err) {
          // A container that stopped between the list and its reading has no series: that is the
          // truth of this scrape. Anything else is said, once per scrape, and the rest still served.
          failures.push(`${task.metadata.name}: ${errorMessage(err)}`);
        }
      }),
    );
    if (failures.length > 0) deps.log(`metrics: ${failures.length} container(s) not read: ${failures.slice(0, 3).join('; ')}`);
    return merged;
  }
}

type Samples = () => Promise<Sample[]>;
type Options = { name: string; help: string; registers: client.Registry[] };

/**
 * prom-client families whose series are the samples of the current scrape. The label names vary
 * with the services' labels (container_label_*), which prom-client's fixed label sets cannot hold,
 * so get() is answered from the samples instead of from values set beforehand.
 */
class SnapshotGauge extends client.Gauge {
  constructor(
    options: Options,
    private readonly samples: Samples,
  ) {
    super(options);
  }

  override async get(): ReturnType<client.Gauge['get']> {
    const base = await super.get();
    return { ...base, values: await this.samples() };
  }
}

class SnapshotCounter extends client.Counter {
  constructor(
    options: Options,
    private readonly samples: Samples,
  ) {
    super(options);
  }

  override async get(): ReturnType<client.Gauge['get']> {
    const base = await super.get();
    return { ...base, values: await this.samples() };
  }
}
