// A memory store with the informers the controllers read (services, tasks, nodes), started and
// synced — what the tests that run real controllers without a daemon share.
import { Informer } from '../../control-plane/controllers/informer.js';
import type { Node, Service, Task } from '../../common/resources/types.js';
import { kindPrefix } from '../../control-plane/store/keys.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import { ObjectStore } from '../../control-plane/store/object-store.js';

export interface ControllerStore {
  store: MemoryStore;
  objects: ObjectStore;
  services: Informer<Service>;
  tasks: Informer<Task>;
  nodes: Informer<Node>;
  /** Stops the informers (the store stays open). */
  stop(): void;
}

export async function startControllerStore(): Promise<ControllerStore> {
  const store = new MemoryStore();
  const services = new Informer<Service>(store, 'Service', kindPrefix('Service'));
  const tasks = new Informer<Task>(store, 'Task', kindPrefix('Task'));
  const nodes = new Informer<Node>(store, 'Node', kindPrefix('Node'));
  for (const i of [services, tasks, nodes]) await i.start();
  return { store, objects: new ObjectStore(store), services, tasks, nodes, stop: () => [services, tasks, nodes].forEach((i) => i.stop()) };
}
