// Wires the pure service decision (service-reconcile.ts) to the store: one work item per service,
// triggered by changes to the service or any of its tasks, and by back-off and rollout timers.
// The service's own write (rollout status, automatic rollback) goes first and only against the
// version the decision was made from: if the service changed meanwhile, the pass is dropped and
// decided again, so tasks are never acted on for a spec the store no longer holds.
import type { Node, Service, Task } from '../resources/types.js';
import { objectKey } from '../store/keys.js';
import { ConflictError, NotFoundError, type ObjectStore } from '../store/object-store.js';
import { MAX_TASK_WRITES_PER_PASS, reconcileService } from './service-reconcile.js';
import { isGlobalMode } from '../resources/types.js';
import { reconcileGlobalService } from './global-reconcile.js';
import { dependencyWait, dependentsOf, gateTask } from './dependency-gate.js';
import { OwnWrites, type Informer } from './informer.js';
import { WorkQueue, type ReconcileResult } from './work-queue.js';

export interface ServiceControllerOptions {
  now?: () => number;
  log?: (message: string) => void;
  /** Called after each pass with the task writes it made (metrics, tests). */
  onPass?: (key: string, writes: PassWrites) => void;
}

/** Task writes of one pass, by kind. */
export interface PassWrites {
  created: number;
  updated: number;
  shutdown: number;
  removed: number;
}

/** Writes between two yields to the event loop: a memory store resolves writes without one. */
const WRITES_BETWEEN_YIELDS = 50;

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Counts a pass's task writes: at most MAX_TASK_WRITES_PER_PASS, with a turn of the event loop
 * every WRITES_BETWEEN_YIELDS, so timers and I/O (Raft heartbeats) run in between.
 */
class WriteBudget {
  readonly writes: PassWrites = { created: 0, updated: 0, shutdown: 0, removed: 0 };
  private used = 0;

  get exhausted(): boolean {
    return this.used >= MAX_TASK_WRITES_PER_PASS;
  }

  async spend(kind: keyof PassWrites): Promise<void> {
    this.writes[kind]++;
    this.used++;
    if (this.used % WRITES_BETWEEN_YIELDS === 0) await yieldToEventLoop();
  }
}

function keyOf(stack: string, name: string): string {
  return `${stack}/${name}`;
}

export class ServiceController {
  private readonly queue: WorkQueue;
  private readonly now: () => number;
  private readonly log: (message: string) => void;
  private readonly onPass: (key: string, writes: PassWrites) => void;

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
    this.queue = new WorkQueue(
      (key) => this.reconcile(key),
      (key, err) => this.log(`service ${key}: reconcile failed: ${(err as Error).message}`),
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

  private async reconcile(key: string): Promise<ReconcileResult> {
    const slash = key.indexOf('/');
    const stack = key.slice(0, slash);
    const name = key.slice(slash + 1);
    const service = this.services.get(objectKey('Service', stack, name));
    const tasks = this.tasks.list().filter((t) => t.spec.serviceStack === stack && t.spec.serviceName === name);
    const decision =
      service !== undefined && isGlobalMode(service.spec.mode)
        ? reconcileGlobalService({ service, serviceKey: { stack, name }, tasks, nodes: this.nodes.list(), now: this.now() })
        : reconcileService({ service, serviceKey: { stack, name }, tasks, now: this.now() });
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
    const budget = new WriteBudget();
    await this.writeTasks(stack, service, tasks, decision, budget, writes);
    await writes.seenBy(this.tasks);
    this.onPass(key, budget.writes);
    // Writes left for lack of budget are decided again (level-triggered) in the next pass, at once.
    if (budget.exhausted) return { requeueAfterMs: 0 };
    return decision.requeueAfterMs !== undefined ? { requeueAfterMs: decision.requeueAfterMs } : undefined;
  }

  /** Carries out the decision's task writes, as many as the pass's budget allows. */
  private async writeTasks(
    stack: string,
    service: Service | undefined,
    tasks: readonly Task[],
    decision: ReturnType<typeof reconcileService>,
    budget: WriteBudget,
    writes: OwnWrites,
  ): Promise<void> {
    const wait = this.dependencyWaitOf(service, stack);
    for (const task of decision.create) {
      if (budget.exhausted) return;
      // A global service's tasks are bound to their nodes at once: held ones are not created yet.
      if (wait !== undefined && task.nodeName !== undefined) continue;
      writes.note(await this.objects.create(gateTask(task, wait) ?? task));
      await budget.spend('created');
    }
    const shutdown = new Set(decision.shutdown);
    for (const task of tasks) {
      if (budget.exhausted) return;
      if (shutdown.has(task.metadata.name) || gateTask(task, wait) === undefined) continue;
      writes.note(await this.objects.updateWithRetry('Task', stack, task.metadata.name, (t) => gateTask(t, wait)));
      await budget.spend('updated');
    }
    for (const taskName of decision.shutdown) {
      if (budget.exhausted) return;
      writes.note(
        await this.objects.updateWithRetry('Task', stack, taskName, (t) =>
          t.desiredState === 'shutdown' ? undefined : { ...t, desiredState: 'shutdown' },
        ),
      );
      await budget.spend('shutdown');
    }
    for (const taskName of decision.remove) {
      if (budget.exhausted) return;
      // Already gone is what we wanted; anything else is retried by the next pass, which still sees the task.
      await this.objects.delete('Task', stack, taskName).catch(() => {});
      await budget.spend('removed');
    }
  }
}
