// Cluster-wide allocation of overlay networks, as a pure function of what the store holds: the
// previous allocation, Network objects, services, tasks and nodes. It keeps every allocation that
// is still wanted (so addresses never move under a running task), hands out what is missing and
// releases what nothing uses any more. Collisions cannot happen: every subnet, VNI and address
// is chosen against the complete previous state.
import { NetworkInputError, broadcastOf, formatIpv4, parseCidr, parseIpv4, type Ipv4Cidr } from '../../common/network/ipv4.js';
import type { Network, Node, Service, Task } from '../../common/resources/types.js';
import { isTerminal } from '../../common/resources/types.js';
import { declaredNetworkIds, resolveServiceNetworks } from './membership.js';
import { INGRESS_NETWORK_ID } from '../../common/network/node-network-view.js';
import { FIRST_VNI, networkId, serviceKey, type ClusterNetworkState, type NetworkKind } from './types.js';

export interface AllocationPool {
  /** The pool subnets are carved from, default 10.0.0.0/8. */
  base: string;
  /** Prefix length of each network's subnet, default 24. */
  subnetPrefix: number;
  /** Subnets never to hand out (node-local bridges, the underlay). */
  reserved: string[];
}

export const DEFAULT_POOL: AllocationPool = { base: '10.0.0.0/8', subnetPrefix: 24, reserved: [] };

export interface AllocationInput {
  previous: ClusterNetworkState;
  networks: readonly Network[];
  services: readonly Service[];
  tasks: readonly Task[];
  nodes: readonly Node[];
  pool: AllocationPool;
}

export interface AllocationResult {
  state: ClusterNetworkState;
  /** Things that could not be allocated, each naming what and why (pool exhausted, unknown network…). */
  problems: string[];
}

interface WantedNetwork {
  id: string;
  stack: string;
  name: string;
  kind: NetworkKind;
  internal: boolean;
  local: boolean;
  subnet?: string;
}

/** A task keeps its addresses until its container is gone (terminal), whatever its desired state. */
function holdsAddresses(task: Task): boolean {
  return !isTerminal(task.status.state);
}

function taskKey(task: Task): string {
  return `${task.metadata.stack ?? ''}/${task.metadata.name}`;
}

export function allocateNetworks(input: AllocationInput): AllocationResult {
  const problems: string[] = [];
  const declared = declaredNetworkIds(input.networks);
  const liveTasks = [...input.tasks].filter(holdsAddresses).sort((a, b) => taskKey(a).localeCompare(taskKey(b)));

  // Which networks each live task and each service is on.
  const taskNetworks = new Map<string, string[]>();
  for (const task of liveTasks) {
    const resolved = resolveServiceNetworks(task.spec.serviceStack, task.spec.serviceName, task.spec.spec, declared);
    taskNetworks.set(taskKey(task), resolved.ids);
  }
  const serviceNetworks = new Map<string, { ids: string[]; vip: boolean }>();
  for (const service of [...input.services].sort((a, b) =>
    serviceKey(a.metadata.stack, a.metadata.name).localeCompare(serviceKey(b.metadata.stack, b.metadata.name)),
  )) {
    const stack = service.metadata.stack ?? '';
    const resolved = resolveServiceNetworks(stack, service.metadata.name, service.spec, declared);
    problems.push(...resolved.problems);
    serviceNetworks.set(serviceKey(stack, service.metadata.name), { ids: resolved.ids, vip: (service.spec.endpointMode ?? 'vip') === 'vip' });
  }

  // The networks that should exist: ingress, every declared one, and a stack's default network
  // while a service or a live task is on it.
  const wanted = new Map<string, WantedNetwork>();
  wanted.set(INGRESS_NETWORK_ID, { id: INGRESS_NETWORK_ID, stack: '', name: INGRESS_NETWORK_ID, kind: 'ingress', internal: false, local: false });
  for (const network of [...input.networks].sort((a, b) =>
    networkId(a.metadata.stack, a.metadata.name).localeCompare(networkId(b.metadata.stack, b.metadata.name)),
  )) {
    const id = networkId(network.metadata.stack, network.metadata.name);
    const subnet = network.spec.subnets?.[0];
    wanted.set(id, {
      id,
      stack: network.metadata.stack ?? '',
      name: network.metadata.name,
      kind: 'declared',
      internal: network.spec.internal ?? false,
      local: network.spec.driver === 'bridge',
      ...(subnet ? { subnet } : {}),
    });
  }
  const used = [...[...serviceNetworks.values()].flatMap((s) => s.ids), ...[...taskNetworks.values()].flat()];
  for (const id of used.sort()) {
    if (wanted.has(id)) continue;
    const slash = id.indexOf('/');
    const stack = id.slice(0, slash) === '_' ? '' : id.slice(0, slash);
    const name = id.slice(slash + 1);
    // Only default networks come into being by use; a named one that vanished is a problem above.
    if (name === 'default') wanted.set(id, { id, stack, name, kind: 'default', internal: false, local: false });
  }

  const state: ClusterNetworkState = { networks: {} };
  const usedVnis = new Set<number>();
  const usedSubnets: Ipv4Cidr[] = [];
  for (const cidr of input.pool.reserved) usedSubnets.push(parseCidr(cidr));
  // Keep what is still wanted first, so new networks are placed around the existing ones.
  for (const id of [...wanted.keys()].sort()) {
    const before = input.previous.networks[id];
    const want = wanted.get(id)!;
    if (!before || (want.subnet !== undefined && want.subnet !== before.subnet)) continue;
    state.networks[id] = { ...structuredClone(before), kind: want.kind, internal: want.internal, stack: want.stack, name: want.name };
    if (want.local) state.networks[id].local = true;
    else delete state.networks[id].local;
    usedVnis.add(before.vni);
    usedSubnets.push(parseCidr(before.subnet));
  }
  for (const id of [...wanted.keys()].sort((a, b) => (a === INGRESS_NETWORK_ID ? -1 : b === INGRESS_NETWORK_ID ? 1 : a.localeCompare(b)))) {
    if (state.networks[id]) continue;
    const want = wanted.get(id)!;
    let subnet: Ipv4Cidr | undefined;
    if (want.subnet !== undefined) {
      try {
        subnet = parseCidr(want.subnet);
      } catch (err) {
        problems.push(`network ${id}: subnet ${want.subnet}: ${(err as Error).message}`);
        continue;
      }
      const clash = usedSubnets.find((u) => overlaps(u, subnet!));
      if (clash) {
        problems.push(`network ${id}: subnet ${subnet.text} overlaps ${clash.text}, which is already in use`);
        continue;
      }
    } else {
      subnet = nextFreeSubnet(input.pool, usedSubnets);
      if (!subnet) {
        problems.push(`network ${id}: the address pool ${input.pool.base} has no free /${input.pool.subnetPrefix} left`);
        continue;
      }
    }
    let vni = FIRST_VNI;
    while (usedVnis.has(vni)) vni++;
    usedVnis.add(vni);
    usedSubnets.push(subnet);
    state.networks[id] = {
      id,
      stack: want.stack,
      name: want.name,
      kind: want.kind,
      internal: want.internal,
      vni,
      subnet: subnet.text,
      gateway: formatIpv4(subnet.network + 1),
      cursor: 1,
      nodes: {},
      vips: {},
      tasks: {},
      ...(want.local ? { local: true } : {}),
    };
  }

  // Addresses: release what is no longer wanted, then hand out what is missing.
  const nodeNames = new Set(input.nodes.map((n) => n.metadata.name));
  const wantedTasks = new Map<string, Set<string>>(); // network → task keys
  const wantedNodes = new Map<string, Set<string>>(); // network → node names
  const wantedVips = new Map<string, Set<string>>(); // network → service keys
  const ensure = (map: Map<string, Set<string>>, id: string) => map.get(id) ?? map.set(id, new Set()).get(id)!;
  for (const id of Object.keys(state.networks)) {
    ensure(wantedTasks, id);
    ensure(wantedVips, id);
    const nodes = ensure(wantedNodes, id);
    if (id === INGRESS_NETWORK_ID) for (const name of nodeNames) nodes.add(name);
  }
  for (const task of liveTasks) {
    for (const id of taskNetworks.get(taskKey(task)) ?? []) {
      if (!state.networks[id]) continue;
      ensure(wantedTasks, id).add(taskKey(task));
      if (task.nodeName && nodeNames.has(task.nodeName)) ensure(wantedNodes, id).add(task.nodeName);
    }
  }
  for (const [key, service] of serviceNetworks) {
    if (!service.vip) continue;
    for (const id of service.ids) if (id !== INGRESS_NETWORK_ID && state.networks[id]) ensure(wantedVips, id).add(key);
  }
  for (const network of Object.values(state.networks)) {
    const keepNodes = wantedNodes.get(network.id)!;
    // A node keeps its address on a network while it exists: tasks come and go, the bridge stays.
    network.nodes = pick(network.nodes, (name) => keepNodes.has(name) || nodeNames.has(name));
    network.tasks = pick(network.tasks, (key) => wantedTasks.get(network.id)!.has(key));
    network.vips = pick(network.vips, (key) => wantedVips.get(network.id)!.has(key));
    const cidr = parseCidr(network.subnet);
    const taken = new Set<number>([
      parseIpv4(network.gateway),
      ...[network.nodes, network.tasks, network.vips].flatMap((m) => Object.values(m).map(parseIpv4)),
    ]);
    const give = (what: string): string | undefined => {
      const address = nextFreeAddress(cidr, taken, network.cursor);
      if (address === undefined) {
        problems.push(`network ${network.id}: no free address for ${what} in ${network.subnet}`);
        return undefined;
      }
      taken.add(address);
      network.cursor = address - cidr.network;
      return formatIpv4(address);
    };
    for (const name of [...keepNodes].sort()) {
      if (network.nodes[name] !== undefined) continue;
      const address = give(`node ${name}`);
      if (address) network.nodes[name] = address;
    }
    for (const key of [...wantedVips.get(network.id)!].sort()) {
      if (network.vips[key] !== undefined) continue;
      const address = give(`the VIP of service ${key}`);
      if (address) network.vips[key] = address;
    }
    for (const key of [...wantedTasks.get(network.id)!].sort()) {
      if (network.tasks[key] !== undefined) continue;
      const address = give(`task ${key}`);
      if (address) network.tasks[key] = address;
    }
  }
  return { state, problems };
}

function pick(record: Record<string, string>, keep: (key: string) => boolean): Record<string, string> {
  return Object.fromEntries(Object.entries(record).filter(([key]) => keep(key)));
}

function overlaps(a: Ipv4Cidr, b: Ipv4Cidr): boolean {
  return a.network <= broadcastOf(b) && b.network <= broadcastOf(a);
}

function nextFreeSubnet(pool: AllocationPool, used: Ipv4Cidr[]): Ipv4Cidr | undefined {
  const base = parseCidr(pool.base);
  if (pool.subnetPrefix < base.prefixLength || pool.subnetPrefix > 30) {
    throw new NetworkInputError(`network pool: subnet prefix /${pool.subnetPrefix} does not fit in ${base.text}`);
  }
  const size = 2 ** (32 - pool.subnetPrefix);
  const end = broadcastOf(base);
  for (let network = base.network; network < end; network += size) {
    const candidate: Ipv4Cidr = { network, prefixLength: pool.subnetPrefix, text: `${formatIpv4(network)}/${pool.subnetPrefix}` };
    const clash = used.find((u) => overlaps(u, candidate));
    // Jump past a large reserved range instead of stepping through it.
    if (clash) {
      const after = broadcastOf(clash) + 1;
      const aligned = base.network + Math.ceil((after - base.network) / size) * size;
      if (aligned > network + size) network = aligned - size;
      continue;
    }
    return candidate;
  }
  return undefined;
}

/** The first free host address after `cursor` (an offset in the subnet), wrapping around once. */
function nextFreeAddress(cidr: Ipv4Cidr, taken: Set<number>, cursor: number): number | undefined {
  const hosts = broadcastOf(cidr) - cidr.network - 1; // offsets 1..hosts are usable
  for (let step = 1; step <= hosts; step++) {
    const offset = ((cursor - 1 + step) % hosts) + 1;
    const address = cidr.network + offset;
    if (!taken.has(address)) return address;
  }
  return undefined;
}
