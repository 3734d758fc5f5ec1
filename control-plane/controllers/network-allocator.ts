// Keeps the cluster's network allocation (control-plane/network/) in line with the store: on any
// change of networks, services, tasks or nodes it recomputes the allocation with the pure
// allocator from the stored document and writes the result back compare-and-swap. One writer per
// cluster (the managers' leader, today the single manager); a conflict just means "run again".
import { allocateNetworks, DEFAULT_POOL, type AllocationPool } from '../network/allocate.js';
import { readNetworkState, writeNetworkState } from '../network/allocation-store.js';
import type { Network, Node, Service, Task } from '../../common/resources/types.js';
import type { Store } from '../store/store.js';
import { canonicalJson } from '../store/object-store.js';
import type { Informer } from './informer.js';
import { WorkQueue, type WorkQueueObserver } from './work-queue.js';

const KEY = 'allocate';

export interface NetworkAllocatorDeps {
  store: Store;
  networks: Informer<Network>;
  services: Informer<Service>;
  tasks: Informer<Task>;
  nodes: Informer<Node>;
  /** Subnets never handed out beyond the nodes' own bridge subnets (read from their Node status). */
  pool?: Partial<AllocationPool>;
  log: (message: string) => void;
  /** Observes the allocator's work queue (metrics); absent: not observed. */
  queue?: WorkQueueObserver;
}

export class NetworkAllocator {
  private readonly queue: WorkQueue;
  private readonly unsubscribe: Array<() => void> = [];
  private lastProblems = '';

  constructor(private readonly deps: NetworkAllocatorDeps) {
    this.queue = new WorkQueue(
      () => this.reconcile(),
      (_key, err) => deps.log(`network allocator: ${(err as Error).message}`),
      1,
      undefined,
      deps.queue,
    );
  }

  start(): void {
    const poke = () => this.queue.add(KEY);
    for (const informer of [this.deps.networks, this.deps.services, this.deps.tasks, this.deps.nodes] as Array<Informer<Network | Service | Task | Node>>) {
      this.unsubscribe.push(informer.subscribe(poke));
    }
    poke();
  }

  stop(): void {
    for (const u of this.unsubscribe.splice(0)) u();
    this.queue.stop();
  }

  /** Resolves when nothing is queued or running (tests). */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  private async reconcile(): Promise<void> {
    const { deps } = this;
    const nodes = deps.nodes.list();
    const reserved = [...(deps.pool?.reserved ?? []), ...nodes.map((n) => n.status.localSubnet).filter((s): s is string => typeof s === 'string')];
    for (let attempt = 0; attempt < 5; attempt++) {
      const stored = await readNetworkState(deps.store);
      const { state, problems } = allocateNetworks({
        previous: stored.state,
        networks: deps.networks.list(),
        services: deps.services.list(),
        tasks: deps.tasks.list(),
        nodes,
        pool: { ...DEFAULT_POOL, ...deps.pool, reserved: [...new Set(reserved)] },
      });
      const summary = problems.join('; ');
      if (summary !== this.lastProblems) {
        if (summary) deps.log(`network allocator: ${summary}`);
        this.lastProblems = summary;
      }
      if (stored.modRevision > 0 && canonicalJson(state) === canonicalJson(stored.state)) return;
      const revision = await writeNetworkState(deps.store, state, stored.modRevision);
      if (revision !== undefined) return;
    }
    throw new Error('the network allocation kept changing underneath; will retry');
  }
}
