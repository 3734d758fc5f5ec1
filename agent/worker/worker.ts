// Reconciles the tasks assigned to this node with the containers running here. It is driven by
// the full set of assignments (level-triggered): whatever the set says, the node converges to.
import { rm } from 'node:fs/promises';

import type { PortSpec, Task } from '../../control-plane/resources/types.js';
import { isTerminal } from '../../control-plane/resources/types.js';
import type { PublishedPort } from '../network/types.js';
import { logPathFor, TaskRunner, type TaskRunnerDeps } from './task-runner.js';

export type WorkerDeps = Omit<TaskRunnerDeps, 'onRunningChanged'>;

function serviceKeyOf(task: Task): string {
  return `${task.spec.serviceStack || '_'}/${task.spec.serviceName}`;
}

/** With the routing mesh on (overlay), only host-mode ports are published on the node-local bridge. */
function publishedPorts(ports: PortSpec[] | undefined, hostModeOnly = false): PublishedPort[] {
  return (ports ?? [])
    .filter((p): p is PortSpec & { published: number } => p.published !== undefined)
    .filter((p) => !hostModeOnly || p.mode === 'host')
    .map((p) => ({ published: p.published, target: p.target, protocol: p.protocol ?? 'tcp' }));
}

export class Worker {
  private readonly runners = new Map<string, TaskRunner>();
  /** Per service: the chain of publish calls, so rule updates for one service never interleave. */
  private readonly publishChains = new Map<string, Promise<void>>();
  private readonly publishedServices = new Set<string>();

  constructor(private readonly deps: WorkerDeps) {}

  /** Brings the node in line with `assigned`, the complete set of tasks the managers gave it. */
  reconcile(assigned: Task[]): void {
    const names = new Set<string>();
    for (const task of assigned) {
      names.add(task.metadata.name);
      const runner = this.runners.get(task.metadata.name);
      if (runner) {
        runner.update(task);
        continue;
      }
      if (task.desiredState === 'running' && (task.status.state === 'assigned' || task.status.state === 'new' || task.status.state === 'pending')) {
        this.launch(task);
      } else if (task.desiredState === 'running' && !isTerminal(task.status.state)) {
        // The store says it was started here, but no runner knows it: this tsd restarted and the
        // container was not re-adopted (the runtime issue adds re-adoption). Report it lost so the
        // service controller replaces it.
        void this.deps.report(task, { state: 'failed', message: 'container lost: the node agent restarted', error: 'container lost' })
          .catch((err: Error) => this.deps.log(`task ${task.metadata.name}: ${err.message}`));
      } else if (task.desiredState === 'shutdown' && !isTerminal(task.status.state)) {
        // Never started here (or started by a tsd that is gone): nothing to stop, just say so.
        void this.deps.report(task, { state: 'shutdown', message: 'shut down before it started' }).catch((err: Error) =>
          this.deps.log(`task ${task.metadata.name}: ${err.message}`),
        );
      }
    }
    for (const [name, runner] of this.runners) {
      if (!names.has(name)) {
        // The task object is gone (deleted or garbage-collected): stop its container and forget its logs.
        void runner.stop();
        void runner.done().then(() => rm(logPathFor(this.deps.logsDir, name), { force: true }));
      }
    }
  }

  running(): TaskRunner[] {
    return [...this.runners.values()];
  }

  /** Stops every container and waits for their clean-up; used at daemon shutdown. */
  async stopAll(): Promise<void> {
    const runners = [...this.runners.values()];
    await Promise.all(runners.map((r) => r.stop()));
    await Promise.all(runners.map((r) => r.done()));
    await Promise.all([...this.publishChains.values()]);
  }

  private launch(task: Task): void {
    const runner = new TaskRunner(task, { ...this.deps, onRunningChanged: (t) => this.republish(t) });
    this.runners.set(task.metadata.name, runner);
    void runner.start().finally(() => {
      if (this.runners.get(task.metadata.name) === runner) this.runners.delete(task.metadata.name);
    });
  }

  private republish(task: Task): void {
    const key = serviceKeyOf(task);
    const previous = this.publishChains.get(key) ?? Promise.resolve();
    const next = previous.then(async () => {
      const members = [...this.runners.values()].filter((r) => serviceKeyOf(r.current) === key);
      const live = members.filter((r) => r.running && r.address !== undefined);
      // The newest spec among the live tasks decides the ports (during a spec change both exist).
      const newest = live.map((r) => r.current).sort((a, b) => b.spec.serviceGeneration - a.spec.serviceGeneration)[0];
      const ports = publishedPorts((newest ?? task).spec.spec.ports, this.deps.overlay !== undefined);
      const backends = live.map((r) => r.address!).sort();
      if (ports.length === 0 && !this.publishedServices.has(key)) return;
      await this.deps.network.publish(key, backends.length > 0 ? ports : [], backends);
      if (backends.length > 0 && ports.length > 0) this.publishedServices.add(key);
      else this.publishedServices.delete(key);
    }).catch((err: Error) => this.deps.log(`publishing ports of ${key}: ${err.message}`));
    this.publishChains.set(key, next);
  }
}
