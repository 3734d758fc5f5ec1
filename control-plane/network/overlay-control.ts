// The managers' half of overlay networking in one piece, so the manager's wiring stays a few
// lines: the Network informer, the allocator controller, the watched allocation document and the
// per-node views the dispatcher sends.
import { Informer } from '../controllers/informer.js';
import { NetworkAllocator } from '../controllers/network-allocator.js';
import { NetworkViews } from '../dispatcher/network-views.js';
import type { Network, Node, Service, Task } from '../resources/types.js';
import { kindPrefix } from '../store/keys.js';
import type { Store } from '../store/store.js';
import { NetworkStateWatcher } from './allocation-store.js';

export interface OverlayControl {
  views: NetworkViews;
  allocator: NetworkAllocator;
  stop(): void;
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
  const allocator = new NetworkAllocator({ store: deps.store, networks, services: deps.services, tasks: deps.tasks, nodes: deps.nodes, pool: { reserved: deps.reserved }, log: deps.log });
  allocator.start();
  const views = new NetworkViews({ allocations, networks, services: deps.services, tasks: deps.tasks, nodes: deps.nodes });
  return {
    views,
    allocator,
    stop: () => {
      views.stop();
      allocator.stop();
      allocations.stop();
      networks.stop();
    },
  };
}
