// Reconciles the tasks assigned to this node with the containers running here. It is driven by
// the full set of assignments (level-triggered): whatever the set says, the node converges to.
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import type { PortSpec, Task } from '../../common/resources/types.js';
import { isTerminal } from '../../common/resources/types.js';
import type { PublishedPort } from '../network/types.js';
import type { ContainerState } from '../runtime/types.js';
import { containerIdFor, logPathFor, TaskRunner, type TaskRunnerDeps } from './task-runner.js';
import { sweepLeftovers } from './leftovers.js';
import type { FileLookup } from '../../common/dispatcher/stack-files.js';
import { sweepTaskFiles } from './task-files-mounts.js';
import { UsernsAllocator } from '../userns/allocator.js';
import { usernsServiceKey } from '../userns/container-ids.js';

export type WorkerDeps = Omit<TaskRunnerDeps, 'onRunningChanged'>;

/** Back-off between reads of a container's state that failed while adopting it: 0.5 s doubling to 30 s. */
const ADOPT_RETRY_FIRST_MS = 500;
const ADOPT_RETRY_MAX_MS = 30_000;

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
  /** Tasks whose containers are being looked up for adoption after a restart. */
  private readonly adopting = new Set<string>();
  /** The latest version of every task in the last assignment set, by name. */
  private assigned = new Map<string, Task>();
  /** Aborted by stopAll: ends adoption retries. */
  private readonly closing = new AbortController();
  private swept = false;

  constructor(private readonly deps: WorkerDeps) {
    // <dataRoot>/userns beside containers/; nothing is read or written until a task asks for `userns: auto`.
    deps.userns ??= new UsernsAllocator({ dir: join(dirname(deps.containersDir), 'userns') });
  }

  /** Brings the node in line with `assigned`, the complete set of tasks the managers gave it. */
  reconcile(assigned: Task[], files?: FileLookup): void {
    // The session's in-memory secrets/configs/volume specs; runners created from here on read them.
    if (files) this.deps.files = files;
    this.assigned = new Map(assigned.map((t) => [t.metadata.name, t]));
    const names = new Set(this.assigned.keys());
    for (const task of assigned) {
      const runner = this.runners.get(task.metadata.name);
      if (runner) {
        runner.update(task);
        continue;
      }
      if (task.desiredState === 'running' && (task.status.state === 'assigned' || task.status.state === 'new' || task.status.state === 'pending')) {
        this.launch(task);
      } else if (!isTerminal(task.status.state) && !this.adopting.has(task.metadata.name)) {
        // The store says it was started here, but no runner knows it: this tsd restarted. Its
        // shim may have kept the container running; then it is taken over, else reported.
        this.adopting.add(task.metadata.name);
        void this.adoptOrReport(task).finally(() => this.adopting.delete(task.metadata.name));
      }
    }
    if (!this.swept) {
      // The first assignment set is the complete truth about this node: containers an earlier
      // tsd left for tasks that are no longer assigned here go.
      this.swept = true;
      const keep = new Set(assigned.filter((t) => !isTerminal(t.status.state)).map((t) => containerIdFor(t)));
      void sweepLeftovers({ ...this.deps, keep, teardownNetwork: false }).catch((err: Error) => this.deps.log(`sweeping leftovers: ${err.message}`));
      void sweepTaskFiles(this.deps.containersDir, keep).catch((err: Error) => this.deps.log(`sweeping secret/config mounts: ${err.message}`));
    }
    this.endUnassigned(names);
    this.releaseIdRanges();
  }

  private async adoptOrReport(assignedTask: Task): Promise<void> {
    const name = assignedTask.metadata.name;
    const read = await this.readStateForAdoption(assignedTask);
    if (read === 'gave up') return;
    const state = read.state;
    // The assignment may have changed while the state was read (e.g. to desired shutdown).
    const task = this.assigned.get(name) ?? assignedTask;
    if (state && state.status !== 'stopped' && !this.runners.has(name)) {
      const runner = new TaskRunner(task, { ...this.deps, onRunningChanged: (t) => this.republish(t) });
      this.runners.set(name, runner);
      this.deps.log(`task ${name}: adopted its running container (pid ${state.pid})`);
      void runner.adopt().finally(() => {
        if (this.runners.get(name) === runner) this.runners.delete(name);
        this.releaseIdRanges();
      });
      // Unassigned while its state was being read: it is adopted only to be stopped.
      if (task.desiredState === 'shutdown' || !this.assigned.has(name)) void runner.stop();
      return;
    }
    if (!this.assigned.has(name)) return;
    if (task.desiredState === 'shutdown') {
      await this.deps
        .report(task, { state: 'shutdown', message: 'shut down before it started' })
        .catch((err: Error) => this.deps.log(`task ${name}: ${err.message}`));
      return;
    }
    if (task.status.state === 'assigned' || task.status.state === 'new' || task.status.state === 'pending') return;
    await this.deps
      .report(task, { state: 'failed', message: 'container lost: it was gone when the node agent restarted', error: 'container lost' })
      .catch((err: Error) => this.deps.log(`task ${name}: ${err.message}`));
  }

  /**
   * The state of the task's container. Only the runtime's definite answer "no such container"
   * (undefined) means it is gone: a read that fails (I/O error, unreadable state) says nothing
   * about whether the container runs, and reporting the task lost then would let the managers
   * start a second copy of its slot beside a container that may still run. So a failed read is
   * logged and retried with back-off, and the task is left as it is meanwhile. Gives up only
   * when the worker stops.
   */
  private async readStateForAdoption(task: Task): Promise<{ state: ContainerState | undefined } | 'gave up'> {
    const name = task.metadata.name;
    const id = containerIdFor(task);
    for (let attempt = 1, delay = ADOPT_RETRY_FIRST_MS; ; attempt++, delay = Math.min(delay * 2, ADOPT_RETRY_MAX_MS)) {
      try {
        return { state: await this.deps.runtime.state(id) };
      } catch (err) {
        this.deps.log(
          `task ${name}: reading the state of its container ${id} failed (attempt ${attempt}): ${(err as Error).message}; ` +
            `the task is left as it is and the read retried in ${delay} ms`,
        );
      }
      try {
        await sleep(delay, undefined, { signal: this.closing.signal });
      } catch {
        // Aborted: the worker is stopping (sleep rejects only with AbortError).
        this.deps.log(`task ${name}: not adopted: the worker stopped while its container's state could not be read`);
        return 'gave up';
      }
    }
  }

  private endUnassigned(names: Set<string>): void {
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
    this.closing.abort();
    const runners = [...this.runners.values()];
    await Promise.all(runners.map((r) => r.stop()));
    await Promise.all(runners.map((r) => r.done()));
    await Promise.all(this.publishChains.values());
  }

  private launch(task: Task): void {
    const runner = new TaskRunner(task, { ...this.deps, onRunningChanged: (t) => this.republish(t) });
    this.runners.set(task.metadata.name, runner);
    void runner.start().finally(() => {
      if (this.runners.get(task.metadata.name) === runner) this.runners.delete(task.metadata.name);
      this.releaseIdRanges();
    });
  }

  /**
   * Frees the id ranges of services none of whose tasks remain here: no runner, and none assigned
   * that is not over (a task being adopted after a restart is assigned). Not while adoptions are
   * being looked up: their services are not known to be running yet.
   */
  private releaseIdRanges(): void {
    const { userns } = this.deps;
    if (!userns || this.adopting.size > 0) return;
    const keep = new Set([...this.runners.values()].map((r) => usernsServiceKey(r.current)));
    for (const task of this.assigned.values()) if (!isTerminal(task.status.state)) keep.add(usernsServiceKey(task));
    void userns
      .retain(keep)
      .then((freed) => {
        if (freed.length > 0) this.deps.log(`user-namespace id ranges freed: ${freed.map((f) => f.service).join(', ')}`);
      })
      .catch((err: Error) => this.deps.log(`freeing user-namespace id ranges: ${err.message}`));
  }

  private republish(task: Task): void {
    const key = serviceKeyOf(task);
    const previous = this.publishChains.get(key) ?? Promise.resolve();
    const next = previous
      .then(async () => {
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
      })
      .catch((err: Error) => this.deps.log(`publishing ports of ${key}: ${err.message}`));
    this.publishChains.set(key, next);
  }
}
