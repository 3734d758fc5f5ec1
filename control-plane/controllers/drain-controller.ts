// Moves tasks off drained nodes: a task on a node whose availability is "drain" is told to shut
// down; the service controller then replaces it and the scheduler, which places nothing on a
// drained node, puts the replacement elsewhere.
import type { Node, Task } from '../../common/resources/types.js';
import { isTerminal } from '../../common/resources/types.js';
import type { ObjectStore } from '../store/object-store.js';
import type { Informer } from './informer.js';
import { WorkQueue, type WorkQueueObserver } from './work-queue.js';

/** Pure: the tasks that must be shut down because their node is drained. */
export function tasksToDrain(nodes: readonly Node[], tasks: readonly Task[]): Task[] {
  const drained = new Set(nodes.filter((n) => n.spec.availability === 'drain').map((n) => n.metadata.name));
  return tasks.filter((t) => t.nodeName !== undefined && drained.has(t.nodeName) && t.desiredState === 'running' && !isTerminal(t.status.state));
}

export class DrainController {
  private readonly queue: WorkQueue;

  constructor(
    private readonly objects: ObjectStore,
    private readonly nodes: Informer<Node>,
    private readonly tasks: Informer<Task>,
    log: (message: string) => void = () => {},
    queueObserver?: WorkQueueObserver,
  ) {
    this.queue = new WorkQueue(
      () => this.reconcile(),
      (_k, err) => log(`drain: ${(err as Error).message}`),
      1,
      undefined,
      queueObserver,
    );
  }

  start(): void {
    this.nodes.subscribe(() => this.queue.add('drain'));
    this.tasks.subscribe((e) => {
      if (e.object.nodeName !== undefined) this.queue.add('drain');
    });
    this.queue.add('drain');
  }

  stop(): void {
    this.queue.stop();
  }

  private async reconcile(): Promise<void> {
    for (const task of tasksToDrain(this.nodes.list(), this.tasks.list())) {
      await this.objects.updateWithRetry('Task', task.metadata.stack ?? '', task.metadata.name, (t) =>
        t.desiredState === 'shutdown' ? undefined : { ...t, desiredState: 'shutdown', status: { ...t.status, message: `node ${t.nodeName} is drained` } },
      );
    }
  }
}
