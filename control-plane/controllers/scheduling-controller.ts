// Places tasks that have no node yet, in batches, with the pure scheduler; records why a task
// cannot be placed on the task itself so `tsctl describe` can show it.
import type { Node, Task } from '../resources/types.js';
import { isTerminal } from '../resources/types.js';
import type { ObjectStore } from '../store/object-store.js';
import { schedule } from '../scheduler/schedule.js';
import { OwnWrites, type Informer } from './informer.js';
import { WorkQueue } from './work-queue.js';

const BATCH_KEY = 'pending';

function needsPlacement(task: Task): boolean {
  // A task held for its service's dependencies (dependency-gate.ts) waits for the service controller.
  return task.nodeName === undefined && task.desiredState === 'running' && (task.status.state === 'new' || task.status.state === 'pending') && task.status.dependencyWait === undefined;
}

export class SchedulingController {
  private readonly queue: WorkQueue;

  constructor(
    private readonly objects: ObjectStore,
    private readonly nodes: Informer<Node>,
    private readonly tasks: Informer<Task>,
    private readonly log: (message: string) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {
    this.queue = new WorkQueue(
      () => this.reconcile(),
      (_key, err) => this.log(`scheduler: ${(err as Error).message}`),
      1,
    );
  }

  start(): void {
    this.tasks.subscribe((e) => {
      if (e.type !== 'deleted' && (needsPlacement(e.object) || this.isUnstartedShutdown(e.object))) this.queue.add(BATCH_KEY);
      // A task ending frees resources a pending task may be waiting for.
      if (e.type !== 'deleted' && isTerminal(e.object.status.state)) this.queue.add(BATCH_KEY);
    });
    this.nodes.subscribe(() => this.queue.add(BATCH_KEY));
    this.queue.add(BATCH_KEY);
  }

  stop(): void {
    this.queue.stop();
  }

  private isUnstartedShutdown(task: Task): boolean {
    return task.nodeName === undefined && task.desiredState === 'shutdown' && !isTerminal(task.status.state);
  }

  private async reconcile(): Promise<void> {
    const all = this.tasks.list();
    const timestamp = new Date(this.now()).toISOString();
    const writes = new OwnWrites();
    // No agent will ever see a task that has no node: end it here.
    for (const task of all.filter((t) => this.isUnstartedShutdown(t))) {
      writes.note(
        await this.objects.updateWithRetry('Task', task.metadata.stack ?? '', task.metadata.name, (t) =>
          this.isUnstartedShutdown(t) ? { ...t, status: { ...t.status, state: 'shutdown', message: 'shut down before it was scheduled', timestamp } } : undefined,
        ),
      );
    }
    const pending = all.filter(needsPlacement);
    if (pending.length > 0) {
      const live = all.filter((t) => t.nodeName !== undefined && !isTerminal(t.status.state));
      const result = schedule({ nodes: this.nodes.list(), tasks: live, pending });
      const byName = new Map(pending.map((t) => [t.metadata.name, t]));
      for (const placement of result.placements) {
        const task = byName.get(placement.task)!;
        writes.note(
          await this.objects.updateWithRetry('Task', task.metadata.stack ?? '', task.metadata.name, (t) =>
            needsPlacement(t)
              ? { ...t, nodeName: placement.node, status: { ...t.status, state: 'assigned', message: `assigned to node ${placement.node}`, timestamp } }
              : undefined,
          ),
        );
      }
      for (const { task: taskName, reason } of result.unplaced) {
        const task = byName.get(taskName)!;
        if (task.status.state === 'pending' && task.status.schedulingReason === reason) continue;
        writes.note(
          await this.objects.updateWithRetry('Task', task.metadata.stack ?? '', task.metadata.name, (t) =>
            needsPlacement(t)
              ? { ...t, status: { ...t.status, state: 'pending', message: reason, schedulingReason: reason, timestamp } }
              : undefined,
          ),
        );
      }
    }
    await writes.seenBy(this.tasks);
  }
}
