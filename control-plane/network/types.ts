// The cluster-wide network allocation, as the managers keep it in the store (one document at
// NETWORK_ALLOCATIONS_KEY, written only by the network allocator) and as the dispatcher reads it
// to tell every node what to program. Addresses are plain IPv4 strings; ids are stable names.

export const NETWORK_ALLOCATIONS_KEY = '/tessera/network/allocations';

/** VNIs below this are left to other users of VXLAN on the same underlay. */
export const FIRST_VNI = 4096;

export type NetworkKind = 'ingress' | 'default' | 'declared';

export interface NetworkAllocation {
  /** "ingress", or "<stack or _>/<network name>"; link names on the nodes are derived from it. */
  id: string;
  stack: string;
  name: string;
  kind: NetworkKind;
  vni: number;
  subnet: string;
  gateway: string;
  /** No traffic beyond the network (kept from the Network object; informational for now). */
  internal: boolean;
  /** Driver bridge: node-local — no VXLAN peers; names and VIPs resolve to the node's own tasks. */
  local?: boolean;
  /** Host offset of the last address handed out: the search for a free one starts after it, so a released address is not reused at once. */
  cursor: number;
  /** Node name → the node's own address on the network (its bridge address, the SNAT source). */
  nodes: Record<string, string>;
  /** Service key "<stack>/<name>" → the service's virtual IP on this network. */
  vips: Record<string, string>;
  /** Task key "<stack>/<name>" → the task's address on this network. */
  tasks: Record<string, string>;
}

export interface ClusterNetworkState {
  networks: Record<string, NetworkAllocation>;
}

export function emptyNetworkState(): ClusterNetworkState {
  return { networks: {} };
}

export function stackSegment(stack: string | undefined): string {
  return stack === undefined || stack === '' ? '_' : stack;
}

export function networkId(stack: string | undefined, name: string): string {
  return `${stackSegment(stack)}/${name}`;
}

export function serviceKey(stack: string | undefined, name: string): string {
  return `${stack ?? ''}/${name}`;
}
