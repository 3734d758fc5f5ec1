// Wires the pure service decision (service-reconcile.ts) to the store: one work item per service,
// triggered by changes to the service or any of its tasks, and by back-off and rollout timers.
// The service's own write (rollout status, automatic rollback) goes first and only against the
// version the decision was made from: if the service changed meanwhile, the pass is dropped and
// decided again, so tasks are never acted on for a spec the store no longer holds.
import type { Node, Service, Task } from '../../common/resources/types.js';
import { objectKey } from '../store/keys.js';
import { ConflictError, NotFoundError, type ObjectStore } from '../store/object-store.js';
import { MAX_TASK_WRITES_PER_PASS, reconcileService } from './service-reconcile.js';
import { isGlobalMode } from '../../common/resources/types.js';
import { reconcileGlobalService } from './global-reconcile.js';
import { dependencyWait, dependentsOf, gateTask } from './dependency-gate.js';
import { OwnWrites, type Informer } from './informer.js';
import { WorkQueue, type ReconcileResult, type WorkQueueObserver } from './work-queue.js';
import { WriteBudget } from './write-budget.js';

export interface ServiceControllerOptions {
  now?: () => number;
  log?: (message: string) => void;
  /** Called after each pass with the task writes it made (metrics, tests). */
  onPass?: (key: string, writes: PassWrites) => void;
  /** Observes the controller's work queue (metrics); absent: not observed. */
  queue?: WorkQueueObserver;
  /** Called for each task created to restart one that ended on its own (metrics). */
  onRestart?: (stack: string, service: string) => void;
}

/** A decision that took this long makes the service wait as long before its next one. */
const SLOW_DECISION_MS = 20;

/**
 * A pass whose task removals failed is decided again after this long (as the work queue waits
 * after a failed pass): no event would come for a task that is simply still there.
 */
export const FAILED_REMOVAL_RETRY_MS = 500;

/** Task writes of one pass, by kind. */
export interface PassWrites {
  created: number;
  updated: number;
  shutdown: number;
  removed: number;
}

function keyOf(stack: string, name: string): string {
  return `${stack}/${name}`;
}

export class ServiceController {
  private readonly queue: WorkQueue;
  private readonly now: () => number;
  private readonly log: (message: string) => void;
  private readonly onPass: (key: string, writes: PassWrites) => void;
  private readonly onRestart: (stack: string, service: string) => void;
  /** How long each service's last decision took (performance.now() clock), for cooldownLeftMs. */
  private readonly decisionCost = new Map<string, { ms: number; endedAt: number }>();

  constructor(
    private readonly objects: ObjectStore,
    private readonly services: Informer<Service>,
    private readonly tasks: Informer<Task>,
    private readonly nodes: Informer<Node>,
    options: ServiceControllerOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.log = options.log ?? (() => {});
    this.onPass = options.onPass ?? (() => {});
    this.onRestart = options.onRestart ?? (() => {});
    this.queue = new WorkQueue(
      (key) => this.reconcile(key),
      (key, err) => this.log(`service ${key}: reconcile failed: ${(err as Error).message}`),
      undefined,
      undefined,
      options.queue,
    );
  }

  start(): void {
    this.services.subscribe((e) => {
      this.queue.add(keyOf(e.object.metadata.stack ?? '', e.object.metadata.name));
      this.addDependents(e.object.metadata.stack ?? '', e.object.metadata.name);
    });
    this.tasks.subscribe((e) => {
      this.queue.add(keyOf(e.object.spec.serviceStack, e.object.spec.serviceName));
      // Services that wait for this one (depends_on) may start now.
      this.addDependents(e.object.spec.serviceStack, e.object.spec.serviceName);
    });
    // Global services follow nodes as they join, leave, drain or change labels.
    this.nodes.subscribe(() => {
      for (const service of this.services.list()) {
        if (isGlobalMode(service.spec.mode)) this.queue.add(keyOf(service.metadata.stack ?? '', service.metadata.name));
      }
    });
    for (const service of this.services.list()) this.queue.add(keyOf(service.metadata.stack ?? '', service.metadata.name));
  }

  stop(): void {
    this.queue.stop();
  }

  private addDependents(stack: string, name: string): void {
    for (const s of dependentsOf(this.services.list(), stack, name)) this.queue.add(keyOf(stack, s.metadata.name));
  }

  /** Why the service's new tasks must wait for its dependencies (depends_on), if they must. */
  private dependencyWaitOf(service: Service | undefined, stack: string): string | undefined {
    if (!service || (service.spec.dependsOn?.length ?? 0) === 0) return undefined;
    return dependencyWait(service, {
      service: (n) => this.services.get(objectKey('Service', stack, n)),
      tasks: (n) => this.tasks.list().filter((t) => t.spec.serviceStack === stack && t.spec.serviceName === n),
    });
  }

  idle(): Promise<void> {
    return this.queue.idle();
  }

  /**
   * A decision over tens of thousands of tasks is one synchronous block of a few hundred
   * milliseconds, and every task event asks for another. Such a service waits as long as its last
   * decision took before deciding again, so it takes at most half of the event loop and the
   * scheduler, other services and Raft get the rest. Cheap decisions are never held back.
   */
  private cooldownLeftMs(key: string): number {
    const last = this.decisionCost.get(key);
    if (last === undefined || last.ms < SLOW_DECISION_MS) return 0;
    return Math.max(0, Math.ceil(last.endedAt + last.ms - performance.now()));
  }

  private noteDecisionCost(key: string, exists: boolean, ms: number): void {
    if (exists) this.decisionCost.set(key, { ms, endedAt: performance.now() });
    else this.decisionCost.delete(key);
  }

  private async reconcile(key: string): Promise<ReconcileResult> {
    const cooling = this.cooldownLeftMs(key);
    if (cooling > 0) return { requeueAfterMs: cooling };
    const slash = key.indexOf('/');
    const stack = key.slice(0, slash);
    const name = key.slice(slash + 1);
    const service = this.services.get(objectKey('Service', stack, name));
    const started = performance.now();
    const tasks = this.tasks.list().filter((t) => t.spec.serviceStack === stack && t.spec.serviceName === name);
    const decision =
      service !== undefined && isGlobalMode(service.spec.mode)
        ? reconcileGlobalService({ service, serviceKey: { stack, name }, tasks, nodes: this.nodes.list(), now: this.now() })
        : reconcileService({ service, serviceKey: { stack, name }, tasks, now: this.now() });
    this.noteDecisionCost(key, service !== undefined, performance.now() - started);
    const writes = new OwnWrites();
    if (service && decision.service) {
      try {
        const written = await this.objects.update<Service>({ ...service, spec: decision.service.spec, status: decision.service.status });
        // The next pass must see this status, or it would start the same rollout again.
        await this.services.waitForRevision(Number(written.metadata.resourceVersion));
      } catch (err) {
        if (err instanceof ConflictError || err instanceof NotFoundError) return { requeueAfterMs: 0 };
        throw err;
      }
      const update = decision.service.status.update;
      if (update && update.state !== service.status?.update?.state) this.log(`service ${key}: ${update.state}: ${update.message ?? ''}`);
    }
    const budget = new WriteBudget<keyof PassWrites>(MAX_TASK_WRITES_PER_PASS, { created: 0, updated: 0, shutdown: 0, removed: 0 });
    const failedRemovals = await this.writeTasks(stack, service, tasks, decision, budget, writes);
    await writes.seenBy(this.tasks);
    this.onPass(key, budget.writes);
    // Writes left for lack of budget are decided again (level-triggered) in the next pass, at once.
    if (budget.exhausted) return { requeueAfterMs: 0 };
    if (failedRemovals.length > 0) {
      this.log(`service ${key}: removing tasks failed, retrying in ${FAILED_REMOVAL_RETRY_MS} ms: ${failedRemovals.join('; ')}`);
      return { requeueAfterMs: Math.min(decision.requeueAfterMs ?? Infinity, FAILED_REMOVAL_RETRY_MS) };
    }
    return decision.requeueAfterMs !== undefined ? { requeueAfterMs: decision.requeueAfterMs } : undefined;
  }

  /**
   * Carries out the decision's task writes, as many as the pass's budget allows. Returns the
   * removals that failed (task and reason); other failed writes throw.
   */
  private async writeTasks(
    stack: string,
    service: Service | undefined,
    tasks: readonly Task[],
    decision: ReturnType<typeof reconcileService>,
    budget: WriteBudget<keyof PassWrites>,
    writes: OwnWrites,
  ): Promise<string[]> {
    const wait = this.dependencyWaitOf(service, stack);
    const failedRemovals: string[] = [];
    const restarts = new Set(decision.restarts);
    for (const task of decision.create) {
      if (budget.exhausted) return failedRemovals;
      // A global service's tasks are bound to their nodes at once: held ones are not created yet.
      if (wait !== undefined && task.nodeName !== undefined) continue;
      writes.note(await this.objects.create(gateTask(task, wait) ?? task));
      if (restarts.has(task.metadata.name)) this.onRestart(stack, task.spec.serviceName);
      await budget.spend('created');
    }
    const shutdown = new Set(decision.shutdown);
    for (const task of tasks) {
      if (budget.exhausted) return failedRemovals;
      if (shutdown.has(task.metadata.name) || gateTask(task, wait) === undefined) continue;
      writes.note(await this.objects.updateWithRetry('Task', stack, task.metadata.name, (t) => gateTask(t, wait)));
      await budget.spend('updated');
    }
    for (const taskName of decision.shutdown) {
      if (budget.exhausted) return failedRemovals;
      writes.note(
        await this.objects.updateWithRetry('Task', stack, taskName, (t) => (t.desiredState === 'shutdown' ? undefined : { ...t, desiredState: 'shutdown' })),
      );
      await budget.spend('shutdown');
    }
    for (const taskName of decision.remove) {
      if (budget.exhausted) return failedRemovals;
      try {
        await this.objects.delete('Task', stack, taskName);
      } catch (err) {
        // Already gone is what we wanted. Anything else is reported and retried by a later pass,
        // which still sees the task; the other removals go ahead meanwhile.
        if (!(err instanceof NotFoundError)) failedRemovals.push(`${taskName}: ${err instanceof Error ? err.message : String(err)}`);
      }
      await budget.spend('removed');
    }
    return failedRemovals;
  }
}
