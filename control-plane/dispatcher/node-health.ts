// Node liveness from heartbeats. Heartbeats stay in memory (writing each to the store would make
// every manager replicate a write per node per period); only transitions are written.
import type { Node, Task } from '../../common/resources/types.js';
import { isTerminal } from '../../common/resources/types.js';
import type { ObjectStore } from '../store/object-store.js';
import type { Informer } from '../controllers/informer.js';

export interface NodeHealthOptions {
  /** A node missing heartbeats for this long is down. */
  timeoutMs: number;
  checkEveryMs: number;
  now?: () => number;
  log?: (message: string) => void;
  /** Told about silent nodes (metrics); absent: not told. */
  observer?: NodeHealthObserver;
}

/** What node health reports for metrics (control-plane/metrics/dispatcher-metrics.ts). */
export interface NodeHealthObserver {
  /** A check found a node not yet down silent for more than two check periods. */
  heartbeatMissed(): void;
  /** A node was marked down. */
  nodeDown(): void;
}

export class NodeHealth {
  private readonly lastSeen = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(
    private readonly objects: ObjectStore,
    private readonly nodes: Informer<Node>,
    private readonly tasks: Informer<Task>,
    private readonly options: NodeHealthOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  heartbeat(nodeName: string): void {
    this.lastSeen.set(nodeName, this.now());
  }

  start(): void {
    this.timer = setInterval(() => void this.check().catch((err: Error) => this.options.log?.(`node health: ${err.message}`)), this.options.checkEveryMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Marks nodes down or ready by their heartbeats; a down node's live tasks become orphaned. */
  async check(): Promise<void> {
    const now = this.now();
    for (const node of this.nodes.list()) {
      const seen = this.lastSeen.get(node.metadata.name);
      const alive = seen !== undefined && now - seen <= this.options.timeoutMs;
      const wanted = alive ? 'ready' : 'down';
      // The check runs every heartbeat period: twice that without one is a heartbeat missed, not jitter.
      if (node.status.state !== 'down' && (seen === undefined || now - seen > 2 * this.options.checkEveryMs)) this.options.observer?.heartbeatMissed();
      if (node.status.state !== wanted) {
        const written = await this.objects.updateWithRetry('Node', '', node.metadata.name, (n) =>
          n.status.state === wanted
            ? undefined
            : { ...n, status: { ...n.status, state: wanted, message: alive ? 'heartbeats received' : `no heartbeat for ${this.options.timeoutMs} ms` } },
        );
        if (written && wanted === 'down') this.options.observer?.nodeDown();
      }
      if (!alive) await this.orphanTasksOf(node.metadata.name);
    }
  }

  /** The node's live tasks become orphaned (and are replaced elsewhere); also used when a node is removed. */
  async orphanTasksOf(nodeName: string, why = `node ${nodeName} is down`): Promise<void> {
    const timestamp = new Date(this.now()).toISOString();
    for (const task of this.tasks.list()) {
      if (task.nodeName !== nodeName || isTerminal(task.status.state)) continue;
      await this.objects.updateWithRetry('Task', task.metadata.stack ?? '', task.metadata.name, (t) =>
        isTerminal(t.status.state) ? undefined : { ...t, status: { ...t.status, state: 'orphaned', message: why, timestamp } },
      );
    }
  }
}
