// The managers' half of overlay networking in one piece, so the manager's wiring stays a few
// lines: the Network informer, the allocator controller, the watched allocation document and the
// per-node views the dispatcher sends. Views run on every manager; the allocator is a controller
// and runs only where the controllers do (the Raft leader), started by `lead()`.
import { Informer } from '../controllers/informer.js';
import { NetworkAllocator } from '../controllers/network-allocator.js';
import { NetworkViews } from '../dispatcher/network-views.js';
import type { Network, Node, Service, Task } from '../../common/resources/types.js';
import { kindPrefix } from '../store/keys.js';
import type { Store } from '../store/store.js';
import { NetworkStateWatcher } from './allocation-store.js';
import type { WorkQueueObserver } from '../controllers/work-queue.js';

export interface OverlayControl {
  views: NetworkViews;
  /** Starts a fresh allocator (its queue observed by `queue`); the returned function stops it (on losing leadership). */
  lead(queue?: WorkQueueObserver): () => void;
  stop(): void;
  /** The watched allocation document (task addresses on each network), read by Prometheus service discovery. */
  allocations: NetworkStateWatcher;
}

export async function startOverlayControl(deps: {
  store: Store;
  services: Informer<Service>;
  tasks: Informer<Task>;
  nodes: Informer<Node>;
  /** Subnets never to allocate (the manager's own bridge subnet; other nodes report theirs). */
  reserved: string[];
  log: (message: string) => void;
}): Promise<OverlayControl> {
  const onError = (err: Error) => deps.log(`network informer: ${err.message}`);
  const networks = new Informer<Network>(deps.store, 'Network', kindPrefix('Network'), onError);
  await networks.start();
  const allocations = new NetworkStateWatcher(deps.store, onError);
  await allocations.start();
  let allocator: NetworkAllocator | undefined;
  const lead = (queue?: WorkQueueObserver): (() => void) => {
    allocator?.stop();
    const own = new NetworkAllocator({
      store: deps.store,
      networks,
      services: deps.services,
      tasks: deps.tasks,
      nodes: deps.nodes,
      pool: { reserved: deps.reserved },
      log: deps.log,
      ...(queue ? { queue } : {}),
    });
    allocator = own;
    own.start();
    return () => {
      own.stop();
      if (allocator === own) allocator = undefined;
    };
  };
  const views = new NetworkViews({ allocations, networks, services: deps.services, tasks: deps.tasks, nodes: deps.nodes });
  return {
    views,
    lead,
    stop: () => {
      views.stop();
      allocator?.stop();
      allocations.stop();
      networks.stop();
    },
    allocations,
  };
}
