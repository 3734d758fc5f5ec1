// CPU % needs two readings: the sampler reads every running container of the node, waits
// SAMPLE_MS, reads them again and pairs the readings (tsctl top). Requests that come while a
// sampling runs share it, so any number of callers costs one pass over the containers per window.
import { setTimeout as sleep } from 'node:timers/promises';

import { errorMessage } from '../fs-errors.js';
import { readContainer, type StatsRuntime } from './container-reading.js';
import { taskUsage, type ContainerReading, type TaskUsage } from './usage.js';

/** How far apart the two readings are: long enough for a steady figure, short enough to wait for. */
export const SAMPLE_MS = 1000;

export interface RunningContainer {
  task: string;
  containerId: string;
}

export interface UsageSample {
  tasks: TaskUsage[];
  /** Tasks whose container could not be read, and why. */
  failed: Array<{ task: string; error: string }>;
  sampleMs: number;
  /** 'v1' or 'v2' as the drivers report it; '' when no container was read. */
  cgroupVersion: string;
}

export interface UsageSamplerDeps {
  runtime: StatsRuntime;
  /** The node's containers that run now. */
  running: () => RunningContainer[];
  sampleMs?: number;
  procRoot?: string;
}

type Outcome = { reading: ContainerReading } | { error: string };

export class UsageSampler {
  private inFlight: Promise<UsageSample> | undefined;

  constructor(private readonly deps: UsageSamplerDeps) {}

  /** Every running container's use over one window. */
  sample(): Promise<UsageSample> {
    this.inFlight ??= this.take().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async take(): Promise<UsageSample> {
    const sampleMs = this.deps.sampleMs ?? SAMPLE_MS;
    const containers = this.deps.running();
    const readAll = () =>
      Promise.all(
        containers.map((c): Promise<Outcome> =>
          readContainer(this.deps.runtime, c.containerId, this.deps.procRoot).then(
            (reading) => ({ reading }),
            (err: unknown) => ({ error: errorMessage(err) }),
          ),
        ),
      );
    const first = await readAll();
    await sleep(sampleMs);
    const second = await readAll();
    const sample: UsageSample = { tasks: [], failed: [], sampleMs, cgroupVersion: '' };
    containers.forEach((container, i) => {
      const before = first[i];
      const after = second[i];
      if (before === undefined || after === undefined) return;
      // The later outcome decides: a container that ended in between has no current figures.
      if ('error' in after) sample.failed.push({ task: container.task, error: after.error });
      else if ('error' in before) sample.failed.push({ task: container.task, error: before.error });
      else {
        sample.tasks.push(taskUsage(container.task, before.reading, after.reading));
        sample.cgroupVersion = after.reading.stats.cgroupVersion;
      }
    });
    return sample;
  }
}
