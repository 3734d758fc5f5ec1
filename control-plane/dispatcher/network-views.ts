// The dispatcher's source of per-node overlay state: watches the allocation document and the
// objects it depends on, and builds a node's view on demand (the precomputation is shared by all
// sessions until the next change).
import type { Informer } from '../controllers/informer.js';
import type { NetworkStateWatcher } from '../network/allocation-store.js';
import type { NodeNetworkView } from '../../common/network/node-network-view.js';
import { NodeViewBuilder } from '../network/node-view.js';
import type { Network, Node, Service, Task } from '../../common/resources/types.js';

export interface NetworkViewSources {
  allocations: NetworkStateWatcher;
  networks: Informer<Network>;
  services: Informer<Service>;
  tasks: Informer<Task>;
  nodes: Informer<Node>;
}

export class NetworkViews {
  private builder: NodeViewBuilder | undefined;
  private readonly listeners: Array<() => void> = [];
  private readonly unsubscribe: Array<() => void> = [];

  constructor(private readonly sources: NetworkViewSources) {
    const changed = () => {
      this.builder = undefined;
      // A snapshot: a listener may unsubscribe while we call them.
      for (const listener of this.listeners.slice()) listener();
    };
    this.unsubscribe.push(sources.allocations.subscribe(changed));
    for (const informer of [sources.networks, sources.services, sources.tasks, sources.nodes] as Array<Informer<Network | Service | Task | Node>>) {
      this.unsubscribe.push(informer.subscribe(changed));
    }
  }

  /** Called on any change that may alter some node's view. */
  subscribe(listener: () => void): () => void {
    this.listeners.push(listener);
    return () => {
      const at = this.listeners.indexOf(listener);
      if (at >= 0) this.listeners.splice(at, 1);
    };
  }

  viewFor(nodeName: string): NodeNetworkView {
    const { sources } = this;
    this.builder ??= new NodeViewBuilder({
      state: sources.allocations.current,
      networks: sources.networks.list(),
      services: sources.services.list(),
      tasks: sources.tasks.list(),
      nodes: sources.nodes.list(),
    });
    return this.builder.build(nodeName);
  }

  stop(): void {
    for (const u of this.unsubscribe.splice(0)) u();
  }
}
