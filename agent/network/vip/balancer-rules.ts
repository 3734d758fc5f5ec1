// Pure validation and nftables text for VIP load balancing and the routing mesh. The whole table
// is replaced in one `nft -f` transaction, so every update is atomic: a connection sees either the
// old backend set or the new one, and established flows keep their conntrack NAT binding.

import { NetworkInputError, isIpv4, validatePort } from '../../../common/network/ipv4.js';
import { overlayBridgeName } from '../overlay/names.js';
import type { PublishedPort } from '../types.js';
import type { BalancerState, MeshService, VipService } from './types.js';

export interface ValidBalancerState {
  vips: VipService[];
  published: MeshService[];
}

export function validateBalancerState(state: BalancerState): ValidBalancerState {
  if (typeof state !== 'object' || state === null || !Array.isArray(state.vips) || !Array.isArray(state.published)) {
    throw new NetworkInputError('balancer state must be { vips: [...], published: [...] }');
  }
  const vipOwner = new Map<string, string>();
  const keys = new Set<string>();
  const vips = state.vips.map((service, i) => {
    const where = `vips[${i}] (${JSON.stringify(service?.key)})`;
    validateKey(service?.key, where, keys, 'vip');
    if (typeof service.networkId !== 'string' || service.networkId.length === 0) throw new NetworkInputError(`${where}.networkId must be set`);
    if (typeof service.vip !== 'string' || !isIpv4(service.vip)) throw new NetworkInputError(`${where}.vip "${String(service.vip)}" is not an IPv4 address`);
    const owner = vipOwner.get(service.vip);
    if (owner !== undefined) throw new NetworkInputError(`${where}: VIP ${service.vip} is already used by "${owner}"`);
    vipOwner.set(service.vip, service.key);
    return { key: service.key, networkId: service.networkId, vip: service.vip, backends: validBackends(service.backends, where) };
  });
  const portOwner = new Map<string, string>();
  const published = state.published.map((service, i) => {
    const where = `published[${i}] (${JSON.stringify(service?.key)})`;
    validateKey(service?.key, where, keys, 'mesh');
    if (!Array.isArray(service.ports)) throw new NetworkInputError(`${where}.ports must be an array`);
    const ports = service.ports.map((port, j): PublishedPort => {
      validatePort(port?.published, `${where}.ports[${j}].published`);
      validatePort(port.target, `${where}.ports[${j}].target`);
      if (port.protocol !== 'tcp' && port.protocol !== 'udp') {
        throw new NetworkInputError(`${where}.ports[${j}].protocol must be "tcp" or "udp", got ${JSON.stringify(port.protocol)}`);
      }
      const id = `${port.published}/${port.protocol}`;
      const owner = portOwner.get(id);
      if (owner !== undefined) throw new NetworkInputError(`${where}: port ${id} is already published by "${owner}"`);
      portOwner.set(id, service.key);
      return { published: port.published, target: port.target, protocol: port.protocol };
    });
    return { key: service.key, ports, backends: validBackends(service.backends, where) };
  });
  return { vips, published };
}

function validateKey(key: unknown, where: string, seen: Set<string>, kind: string): asserts key is string {
  if (typeof key !== 'string' || key.length === 0 || key.length > 256) throw new NetworkInputError(`${where}: key must be 1-256 characters`);
  if (seen.has(`${kind}:${key}`)) throw new NetworkInputError(`${where}: key "${key}" is listed twice`);
  seen.add(`${kind}:${key}`);
}

function validBackends(backends: unknown, where: string): string[] {
  if (!Array.isArray(backends)) throw new NetworkInputError(`${where}.backends must be an array`);
  for (const [i, address] of backends.entries()) {
    if (typeof address !== 'string' || !isIpv4(address)) throw new NetworkInputError(`${where}.backends[${i}] "${String(address)}" is not an IPv4 address`);
  }
  // Sorted: the same set always gives the same rule text, so unchanged state is a no-op.
  return [...new Set(backends as string[])].sort();
}

function backendMap(backends: string[], port?: number): string {
  const map = backends.map((address, i) => `${i} : ${address}`).join(', ');
  return `numgen random mod ${backends.length} map { ${map} }${port === undefined ? '' : ` : ${port}`}`;
}

/**
 * VIP rules match only on the VIP's own network bridge (and locally generated traffic), so a
 * container on another network cannot use the node to reach into it. Routing-mesh rules match any
 * local address. numgen picks a backend per new connection; conntrack keeps the flow on it.
 */
export function balancerTableScript(table: string, state: ValidBalancerState): string {
  const t = `ip ${table}`;
  const out = [
    `add table ${t}`,
    `delete table ${t}`,
    `add table ${t}`,
    `add chain ${t} prerouting { type nat hook prerouting priority dstnat; policy accept; }`,
    `add chain ${t} output { type nat hook output priority -100; policy accept; }`,
  ];
  for (const service of [...state.vips].sort((a, b) => a.key.localeCompare(b.key))) {
    if (service.backends.length === 0) continue;
    const bridge = overlayBridgeName(service.networkId);
    const target = `dnat to ${backendMap(service.backends)}`;
    out.push(`add rule ${t} prerouting iifname "${bridge}" ip daddr ${service.vip} meta l4proto { tcp, udp } ${target}`);
    out.push(`add rule ${t} output ip daddr ${service.vip} meta l4proto { tcp, udp } ${target}`);
  }
  for (const service of [...state.published].sort((a, b) => a.key.localeCompare(b.key))) {
    if (service.backends.length === 0) continue;
    for (const port of service.ports) {
      const match = `fib daddr type local meta l4proto ${port.protocol} th dport ${port.published}`;
      const target = `dnat to ${backendMap(service.backends, port.target)}`;
      out.push(`add rule ${t} prerouting ${match} ${target}`);
      out.push(`add rule ${t} output ${match} ${target}`);
    }
  }
  return out.join('\n') + '\n';
}

/** VIP addresses as /32s on their network's bridge, so containers there get ARP answers for them. */
export function vipAddresses(state: ValidBalancerState): Map<string, string> {
  const result = new Map<string, string>();
  for (const service of state.vips) result.set(`${service.vip}/32`, overlayBridgeName(service.networkId));
  return result;
}
