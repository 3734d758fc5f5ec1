// Desired service load-balancing state of one node: the VIPs of the networks it has, and the
// routing-mesh ports every node publishes.

import type { PublishedPort } from '../types.js';

export interface VipService {
  /** Stable service key, e.g. "stack/web" (with the network, when a service has several VIPs). */
  key: string;
  /** Overlay network the VIP belongs to; only containers on its bridge (and the node) reach it. */
  networkId: string;
  /** Virtual address in the network's subnet; every TCP/UDP port on it is balanced. */
  vip: string;
  /** Addresses of the service's healthy running tasks on that network. Empty: nothing answers. */
  backends: string[];
}

export interface MeshService {
  key: string;
  /** Ports published on every node's local addresses. */
  ports: PublishedPort[];
  /** Task addresses on the ingress network, on any node. */
  backends: string[];
}

export interface BalancerState {
  vips: VipService[];
  published: MeshService[];
}

export interface VipBalancerConfig {
  netns?: string;
  /** nftables table (family ip), default "tessera_lb". */
  nftTable?: string;
}
