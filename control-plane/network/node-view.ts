// What one node must program for the overlay, computed from the cluster allocation and the
// objects in the store (pure). The dispatcher sends it to the node whenever it changes; the agent
// converges its bridges, VXLAN entries, DNS answers and nftables balancing to it. The view's shape
// is common/network/node-network-view.ts.
import type { DnsRecords } from '../../common/network/dns-records.js';
import { macForAddress } from '../../common/network/mac-address.js';
import type { NodeNetworkView, NodeViewAttachment, NodeViewPeer, NodeViewVip } from '../../common/network/node-network-view.js';
import type { Network, Node, Service, Task } from '../../common/resources/types.js';
import { isTerminal } from '../../common/resources/types.js';
import { declaredNetworkIds, meshPorts, resolveServiceNetworks } from './membership.js';
import { INGRESS_NETWORK_ID } from '../../common/network/node-network-view.js';
import { serviceKey, type ClusterNetworkState } from './types.js';

export interface NodeViewInput {
  state: ClusterNetworkState;
  networks: readonly Network[];
  services: readonly Service[];
  tasks: readonly Task[];
  nodes: readonly Node[];
}

function taskKey(task: Task): string {
  return `${task.metadata.stack ?? ''}/${task.metadata.name}`;
}

/**
 * A task that may take traffic (VIP backends, DNS answers, the routing mesh): running, and healthy
 * if it has a health check — one still starting or unhealthy gets none (as in Swarm).
 */
function servesTraffic(task: Task): boolean {
  const health = task.status.health;
  return task.desiredState === 'running' && task.status.state === 'running' && (health === undefined || health === 'healthy');
}

/** Precomputes what every node's view needs, so building the views of N nodes is not N × work. */
export class NodeViewBuilder {
  private readonly declared: Set<string>;
  private readonly taskNetworks = new Map<string, string[]>();
  private readonly liveTasks: Task[];
  private readonly underlay = new Map<string, string>();

  constructor(private readonly input: NodeViewInput) {
    this.declared = declaredNetworkIds(input.networks);
    this.liveTasks = input.tasks.filter((t) => !isTerminal(t.status.state)).sort((a, b) => taskKey(a).localeCompare(taskKey(b)));
    for (const task of this.liveTasks) {
      this.taskNetworks.set(taskKey(task), resolveServiceNetworks(task.spec.serviceStack, task.spec.serviceName, task.spec.spec, this.declared).ids);
    }
    for (const node of input.nodes) if (node.status.address) this.underlay.set(node.metadata.name, node.status.address);
  }

  /** The nodes that have a network: every node for ingress, else those running one of its tasks. */
  private members(id: string): Set<string> {
    const allocation = this.input.state.networks[id];
    const members = new Set<string>();
    if (!allocation) return members;
    if (id === INGRESS_NETWORK_ID) {
      for (const name of Object.keys(allocation.nodes)) members.add(name);
      return members;
    }
    for (const task of this.liveTasks) {
      if (task.nodeName && allocation.nodes[task.nodeName] && allocation.tasks[taskKey(task)] && this.taskNetworks.get(taskKey(task))?.includes(id))
        members.add(task.nodeName);
    }
    return members;
  }

  build(nodeName: string): NodeNetworkView {
    const { state } = this.input;
    const view: NodeNetworkView = { networks: [], published: [], tasks: {} };
    const onNode = new Set<string>();
    for (const task of this.liveTasks) {
      if (task.nodeName !== nodeName) continue;
      const ids = this.taskNetworks.get(taskKey(task)) ?? [];
      const attachments: NodeViewAttachment[] = [];
      for (const id of ids) {
        const address = state.networks[id]?.tasks[taskKey(task)];
        if (address !== undefined && state.networks[id]?.nodes[nodeName] !== undefined) attachments.push({ networkId: id, address });
      }
      if (attachments.length !== ids.length) continue;
      view.tasks[taskKey(task)] = attachments;
      for (const a of attachments) onNode.add(a.networkId);
    }
    if (state.networks[INGRESS_NETWORK_ID]?.nodes[nodeName] !== undefined) onNode.add(INGRESS_NETWORK_ID);

    for (const id of [...onNode].sort()) {
      const allocation = state.networks[id]!;
      const peers: NodeViewPeer[] = [];
      // A node-local (bridge) network has no peers (its VXLAN device knows no other node), and its
      // names and VIPs answer with this node's tasks only.
      const local = allocation.local === true;
      const members = local ? [] : [...this.members(id)].sort();
      for (const member of members) {
        const underlay = this.underlay.get(member);
        const nodeAddress = allocation.nodes[member];
        if (member === nodeName || !underlay || !nodeAddress) continue;
        const endpoints = [{ address: nodeAddress, mac: macForAddress(nodeAddress) }];
        for (const task of this.liveTasks) {
          const address = allocation.tasks[taskKey(task)];
          if (task.nodeName === member && address !== undefined) endpoints.push({ address, mac: macForAddress(address) });
        }
        peers.push({ nodeUnderlayAddress: underlay, endpoints });
      }
      const { dns, vips } = id === INGRESS_NETWORK_ID ? { dns: { services: [], aliases: [] }, vips: [] } : this.discovery(id, local ? nodeName : undefined);
      view.networks.push({
        id,
        name: allocation.name,
        vni: allocation.vni,
        subnet: allocation.subnet,
        gateway: allocation.gateway,
        nodeAddress: allocation.nodes[nodeName]!,
        internal: allocation.internal,
        peers,
        dns,
        vips,
      });
    }
    if (onNode.has(INGRESS_NETWORK_ID)) view.published = this.published();
    return view;
  }

  /** `onlyNode`: a node-local network's answers name only the tasks on that node. */
  private runningAddresses(serviceStack: string, serviceName: string, id: string, onlyNode?: string): string[] {
    const allocation = this.input.state.networks[id];
    if (!allocation) return [];
    return this.liveTasks
      .filter(
        (t) =>
          servesTraffic(t) && t.spec.serviceStack === serviceStack && t.spec.serviceName === serviceName && (onlyNode === undefined || t.nodeName === onlyNode),
      )
      .map((t) => allocation.tasks[taskKey(t)])
      .filter((a): a is string => a !== undefined)
      .sort();
  }

  private discovery(id: string, onlyNode?: string): { dns: DnsRecords; vips: NodeViewVip[] } {
    const allocation = this.input.state.networks[id]!;
    const dns: DnsRecords = { services: [], aliases: [] };
    const vips: NodeViewVip[] = [];
    const taken = new Set<string>();
    const services = [...this.input.services].sort((a, b) =>
      serviceKey(a.metadata.stack, a.metadata.name).localeCompare(serviceKey(b.metadata.stack, b.metadata.name)),
    );
    for (const service of services) {
      const stack = service.metadata.stack ?? '';
      const name = service.metadata.name;
      if (!resolveServiceNetworks(stack, name, service.spec, this.declared).ids.includes(id)) continue;
      const key = serviceKey(stack, name);
      const tasks = this.runningAddresses(stack, name, id, onlyNode);
      const mode = service.spec.endpointMode ?? 'vip';
      const vip = allocation.vips[key];
      if (mode === 'vip' && vip === undefined) continue;
      // Two services may not answer to one name: the first (by key) keeps it.
      const names = [name, ...(stack ? [`${stack}_${name}`] : []), ...(service.spec.networks?.find((n) => n.name === allocation.name)?.aliases ?? [])]
        .map((n) => n.toLowerCase())
        .filter((n) => /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/.test(n) && !taken.has(n));
      if (names.length === 0) continue;
      for (const n of names) taken.add(n);
      dns.services.push({ names, endpointMode: mode, ...(mode === 'vip' ? { vip } : {}), tasks });
      if (mode === 'vip' && vip !== undefined) vips.push({ key: `${key}@${id}`, vip, backends: tasks });
    }
    return { dns, vips };
  }

  private published(): NodeNetworkView['published'] {
    const result: NodeNetworkView['published'] = [];
    const claimed = new Set<string>();
    const services = [...this.input.services].sort((a, b) =>
      serviceKey(a.metadata.stack, a.metadata.name).localeCompare(serviceKey(b.metadata.stack, b.metadata.name)),
    );
    for (const service of services) {
      const ports = meshPorts(service.spec).filter((p) => !claimed.has(`${p.published}/${p.protocol}`));
      if (ports.length === 0) continue;
      for (const p of ports) claimed.add(`${p.published}/${p.protocol}`);
      const stack = service.metadata.stack ?? '';
      result.push({ key: serviceKey(stack, service.metadata.name), ports, backends: this.runningAddresses(stack, service.metadata.name, INGRESS_NETWORK_ID) });
    }
    return result;
  }
}
