// Places tasks that have no node yet, in batches, with the pure scheduler; records why a task
// cannot be placed on the task itself so `tsctl describe` can show it.
import type { Node, Task } from '../../common/resources/types.js';
import { isTerminal } from '../../common/resources/types.js';
import type { ObjectStore } from '../store/object-store.js';
import { schedule, type UnschedulableReason } from '../scheduler/schedule.js';
import { OwnWrites, type Informer } from './informer.js';
import { WorkQueue, type ReconcileResult, type WorkQueueObserver } from './work-queue.js';
import { WriteBudget } from './write-budget.js';

const BATCH_KEY = 'pending';

/**
 * Placements written per store transaction (one Raft entry). One at a time, each placement was a
 * linearizable read and a proposal, in sequence: bench:scale measured that path at a few hundred
 * placements a second. About 100 KB of tasks per entry.
 */
export const PLACEMENTS_PER_WRITE = 100;

interface Placement {
  task: Task;
  node: string;
}

/**
 * Task writes one pass makes at most. A node that joins while 20,000 tasks wait used to get them
 * all in one pass that held the event loop for 1.8 s; now the next pass takes the rest at once.
 */
export const MAX_SCHEDULER_WRITES_PER_PASS = 1000;

/** Task writes of one scheduling pass: ended before placement, assigned to a node, left pending with a reason. */
export interface SchedulerPassWrites {
  ended: number;
  assigned: number;
  pending: number;
}

/** What the scheduling controller reports for metrics (control-plane/metrics/scheduler-metrics.ts). */
export interface SchedulingObserver {
  /** After a pass: tasks still without a node, and the unplaced ones by filter. */
  passed(pending: number, unschedulable: ReadonlyMap<UnschedulableReason, number>): void;
  /** A task was assigned this long after it was created. */
  assigned(waitedSeconds: number): void;
  /** Tasks placed and left unplaced by one pass. */
  attempted(scheduled: number, unschedulable: number): void;
  /** The controller stopped (this manager no longer leads). */
  stopped(): void;
}

export interface SchedulingMetrics {
  queue?: WorkQueueObserver;
  scheduling?: SchedulingObserver;
}

function needsPlacement(task: Task): boolean {
  // A task held for its service's dependencies (dependency-gate.ts) waits for the service controller.
  return (
    task.nodeName === undefined &&
    task.desiredState === 'running' &&
    (task.status.state === 'new' || task.status.state === 'pending') &&
    task.status.dependencyWait === undefined
  );
}

export class SchedulingController {
  private readonly queue: WorkQueue;

  constructor(
    private readonly objects: ObjectStore,
    private readonly nodes: Informer<Node>,
    private readonly tasks: Informer<Task>,
    private readonly log: (message: string) => void = () => {},
    private readonly now: () => number = Date.now,
    /** Called after each pass with the writes it made (tests). */
    private readonly onPass: (writes: SchedulerPassWrites) => void = () => {},
    private readonly metrics: SchedulingMetrics = {},
  ) {
    this.queue = new WorkQueue(
      () => this.reconcile(),
      (_key, err) => this.log(`scheduler: ${(err as Error).message}`),
      1,
      undefined,
      metrics.queue,
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
    this.metrics.scheduling?.stopped();
  }

  private isUnstartedShutdown(task: Task): boolean {
    return task.nodeName === undefined && task.desiredState === 'shutdown' && !isTerminal(task.status.state);
  }

  private async reconcile(): Promise<ReconcileResult> {
    const all = this.tasks.list();
    const timestamp = new Date(this.now()).toISOString();
    const writes = new OwnWrites();
    const budget = new WriteBudget<keyof SchedulerPassWrites>(MAX_SCHEDULER_WRITES_PER_PASS, { ended: 0, assigned: 0, pending: 0 });
    const unschedulable = new Map<UnschedulableReason, number>();
    const pending = await this.writePass(all, timestamp, writes, budget, unschedulable);
    this.metrics.scheduling?.passed(pending - budget.writes.assigned, unschedulable);
    await writes.seenBy(this.tasks);
    this.onPass(budget.writes);
    return budget.exhausted ? { requeueAfterMs: 0 } : undefined;
  }

  /** Resolves with the number of tasks that were waiting for a node; counts the unplaced by filter into `unschedulable`. */
  private async writePass(
    all: Task[],
    timestamp: string,
    writes: OwnWrites,
    budget: WriteBudget<keyof SchedulerPassWrites>,
    unschedulable: Map<UnschedulableReason, number>,
  ): Promise<number> {
    const pending = all.filter(needsPlacement);
    // No agent will ever see a task that has no node: end it here.
    for (const task of all.filter((t) => this.isUnstartedShutdown(t))) {
      if (budget.exhausted) return pending.length;
      await budget.spend('ended');
      writes.note(
        await this.objects.updateWithRetry('Task', task.metadata.stack ?? '', task.metadata.name, (t) =>
          this.isUnstartedShutdown(t)
            ? { ...t, status: { ...t.status, state: 'shutdown', message: 'shut down before it was scheduled', timestamp } }
            : undefined,
        ),
      );
    }
    if (pending.length > 0) {
      const live = all.filter((t) => t.nodeName !== undefined && !isTerminal(t.status.state));
      const result = schedule({ nodes: this.nodes.list(), tasks: live, pending }, (reasons) => {
        for (const reason of reasons) unschedulable.set(reason, (unschedulable.get(reason) ?? 0) + 1);
      });
      this.metrics.scheduling?.attempted(result.placements.length, result.unplaced.length);
      const byName = new Map(pending.map((t) => [t.metadata.name, t]));
      const { placements } = result;
      // Read through a function: the budget changes across the awaits below.
      const outOfBudget = () => budget.exhausted;
      for (let i = 0; i < placements.length && !outOfBudget();) {
        const batch: Placement[] = [];
        while (i < placements.length && batch.length < PLACEMENTS_PER_WRITE) {
          const placement = placements[i++]!;
          await budget.spend('assigned');
          batch.push({ task: byName.get(placement.task)!, node: placement.node });
          if (outOfBudget()) break;
        }
        await this.writePlacements(batch, timestamp, writes);
      }
      for (const { task: taskName, reason } of result.unplaced) {
        const task = byName.get(taskName)!;
        if (task.status.state === 'pending' && task.status.schedulingReason === reason) continue;
        if (budget.exhausted) return pending.length;
        await budget.spend('pending');
        writes.note(
          await this.objects.updateWithRetry('Task', task.metadata.stack ?? '', task.metadata.name, (t) =>
            needsPlacement(t) ? { ...t, status: { ...t.status, state: 'pending', message: reason, schedulingReason: reason, timestamp } } : undefined,
          ),
        );
      }
    }
    return pending.length;
  }

  /**
   * One transaction for the whole batch, against the versions the informer holds (no read first).
   * If any task changed meanwhile nothing is written, and each is read and decided again alone.
   */
  private async writePlacements(batch: readonly Placement[], timestamp: string, writes: OwnWrites): Promise<void> {
    const assign = (t: Task, node: string): Task => ({
      ...t,
      nodeName: node,
      status: { ...t.status, state: 'assigned', message: `assigned to node ${node}`, timestamp },
    });
    const together = await this.objects.updateAllIfUnchanged(batch.map((p) => assign(p.task, p.node)));
    const written =
      together ??
      (await (async () => {
        const one: Array<Task | undefined> = [];
        for (const { task, node } of batch) {
          one.push(
            await this.objects.updateWithRetry('Task', task.metadata.stack ?? '', task.metadata.name, (t) => (needsPlacement(t) ? assign(t, node) : undefined)),
          );
        }
        return one;
      })());
    for (const task of written) {
      writes.note(task);
      const createdAt = task?.metadata.createdAt === undefined ? NaN : Date.parse(task.metadata.createdAt);
      if (task && Number.isFinite(createdAt)) this.metrics.scheduling?.assigned(Math.max(0, this.now() - createdAt) / 1000);
    }
  }
}
