// The node's running task containers as Prometheus metrics (cAdvisor's families, container-series.ts)
// in the registry tsd serves on /metrics. Nothing is kept between scrapes: each scrape reads the
// containers that run now and publishes exactly their series, so a removed task's series are gone
// at the next scrape. The families are written as text in one pass (container-text.ts) and served
// after the registry's prom-client families; readings are shared by scrapes that come at once.
import type * as client from 'prom-client';

import { addTextCollector } from '../../common/metrics/text-collectors.js';

import type { Task } from '../../common/resources/types.js';
import { errorMessage } from '../fs-errors.js';
import { readContainer, type StatsRuntime } from './container-reading.js';
import { CONTAINER_METRICS, taskLabels } from './container-series.js';
import { containerFamiliesText, type ContainerSeriesInput } from './container-text.js';
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

/** A reading this recent is served again: scrapes that come at once share one reading. */
const REUSE_MS = 500;

export class ContainerMetrics {
  private latest: { at: number; text: Promise<string> } | undefined;

  constructor(private readonly deps: ContainerMetricsDeps) {}

  /** Adds the container families to what `registry` serves (exposition()); every value is read at scrape time. */
  register(registry: client.Registry): void {
    addTextCollector(registry, { names: CONTAINER_METRICS.map((family) => family.name), text: () => this.text() });
  }

  /** The container families' text from one reading of every running container, shared by the callers of the next REUSE_MS. */
  text(): Promise<string> {
    const now = Date.now();
    if (this.latest === undefined || now - this.latest.at > REUSE_MS) this.latest = { at: now, text: this.read() };
    return this.latest.text;
  }

  private async read(): Promise<string> {
    const { deps } = this;
    const failures: string[] = [];
    // /proc/stat's boot time, read once for the whole scrape (not before a container needs it).
    let boot: Promise<number | undefined> | undefined;
    const bootTime = () => (boot ??= bootTimeSeconds(deps.procRoot));
    const read = await Promise.all(
      deps.running().map(async ({ task, containerId }): Promise<ContainerSeriesInput | undefined> => {
        try {
          const reading = await readContainer(deps.runtime, containerId, deps.procRoot);
          const startSeconds = reading.pid === undefined ? undefined : await processStartSeconds(reading.pid, deps.procRoot, bootTime);
          return { labels: taskLabels(task, containerId, deps.node), reading, startSeconds };
        } catch (err) {
          // A container that stopped between the list and its reading has no series: that is the
          // truth of this scrape. Anything else is said, once per scrape, and the rest still served.
          failures.push(`${task.metadata.name}: ${errorMessage(err)}`);
          return undefined;
        }
      }),
    );
    if (failures.length > 0) deps.log(`metrics: ${failures.length} container(s) not read: ${failures.slice(0, 3).join('; ')}`);
    return containerFamiliesText(read.filter((input) => input !== undefined));
  }
}
