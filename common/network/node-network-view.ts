// The overlay view the dispatcher sends each node: what the node must program (bridges, VXLAN
// peers, DNS answers, VIP balancing, the routing mesh, its tasks' interfaces). The manager builds it
// (control-plane/network/node-view.ts); the agent parses it and converges the kernel to it.
import type { DnsRecords } from './dns-records.js';

/** The routing-mesh network every node joins; published ingress ports are balanced over it. */
export const INGRESS_NETWORK_ID = 'ingress';

export interface NodeViewPeer {
  nodeUnderlayAddress: string;
  endpoints: Array<{ address: string; mac: string }>;
}

export interface NodeViewVip {
  key: string;
  vip: string;
  backends: string[];
}

export interface NodeViewNetwork {
  id: string;
  name: string;
  vni: number;
  subnet: string;
  gateway: string;
  /** This node's own address on the network. */
  nodeAddress: string;
  internal: boolean;
  peers: NodeViewPeer[];
  /** Names the node's resolver answers on this network's gateway (none on ingress). */
  dns: DnsRecords;
  vips: NodeViewVip[];
}

export interface NodeViewAttachment {
  networkId: string;
  address: string;
}

export interface NodeNetworkView {
  networks: NodeViewNetwork[];
  /** Routing mesh: every node publishes these ports, balanced over ingress task addresses. */
  published: Array<{ key: string; ports: Array<{ published: number; target: number; protocol: 'tcp' | 'udp' }>; backends: string[] }>;
  /**
   * Task key → its interfaces in order, for this node's tasks whose every network is allocated
   * (a task missing here is still waiting for its addresses).
   */
  tasks: Record<string, NodeViewAttachment[]>;
}

/**
 * Parses a view received from a manager. Shape only: every address, VNI and name is validated
 * again by the component that programs it (overlay driver, resolver, balancer), with named errors.
 */
export function parseNodeNetworkView(json: string): NodeNetworkView {
  const view = JSON.parse(json) as unknown;
  const where = 'network state from the manager';
  if (!isRecord(view)) throw new Error(`${where}: expected an object`);
  const { networks, published, tasks } = view;
  if (!Array.isArray(networks)) throw new Error(`${where}: networks must be an array`);
  if (!Array.isArray(published)) throw new Error(`${where}: published must be an array`);
  if (!isRecord(tasks) || Array.isArray(tasks)) throw new Error(`${where}: tasks must be an object`);
  networks.forEach((n: unknown, i) => {
    if (!isRecord(n) || typeof n.id !== 'string' || n.id === '') throw new Error(`${where}: networks[${i}].id must be a non-empty string`);
    if (!Array.isArray(n.peers) || !Array.isArray(n.vips) || !isRecord(n.dns)) {
      throw new Error(`${where}: networks[${i}] (${n.id}) needs peers, vips and dns`);
    }
  });
  for (const [key, attachments] of Object.entries(tasks)) {
    if (!Array.isArray(attachments) || attachments.some((a: unknown) => !isRecord(a) || typeof a.networkId !== 'string' || typeof a.address !== 'string')) {
      throw new Error(`${where}: tasks[${JSON.stringify(key)}] must be a list of { networkId, address }`);
    }
  }
  return view as unknown as NodeNetworkView;
}

/** A non-null object whose fields are still unchecked (the manager's JSON is not trusted). */
function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}
