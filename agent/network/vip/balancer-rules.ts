// Pure validation and nftables text for VIP load balancing and the routing mesh. The whole table
// is replaced in one `nft -f` transaction, so every update is atomic: a connection sees either the
// old backend set or the new one, and established flows keep their conntrack NAT binding.

import { NetworkInputError, isIpv4 } from '../../../common/network/ipv4.js';
import { fieldsOf, itemsOf, validPort, validProtocol } from '../input.js';
import { overlayBridgeName } from '../overlay/names.js';
import type { PublishedPort } from '../types.js';
import type { MeshService, VipService } from './types.js';

export interface ValidBalancerState {
  vips: VipService[];
  published: MeshService[];
}

/** `input` (a BalancerState) comes from the managers' view: checked here, field by field. */
export function validateBalancerState(input: unknown): ValidBalancerState {
  const state = fieldsOf(input);
  const vipItems = itemsOf(state?.vips);
  const publishedItems = itemsOf(state?.published);
  if (vipItems === undefined || publishedItems === undefined) {
    throw new NetworkInputError('balancer state must be { vips: [...], published: [...] }');
  }
  const vipOwner = new Map<string, string>();
  const keys = new Set<string>();
  const vips = vipItems.map((item, i): VipService => {
    const service = fieldsOf(item);
    const key = service?.key;
    const where = `vips[${i}] (${JSON.stringify(key)})`;
    validateKey(key, where, keys, 'vip');
    const { networkId, vip } = service ?? {};
    if (typeof networkId !== 'string' || networkId.length === 0) throw new NetworkInputError(`${where}.networkId must be set`);
    if (typeof vip !== 'string' || !isIpv4(vip)) throw new NetworkInputError(`${where}.vip "${String(vip)}" is not an IPv4 address`);
    const owner = vipOwner.get(vip);
    if (owner !== undefined) throw new NetworkInputError(`${where}: VIP ${vip} is already used by "${owner}"`);
    vipOwner.set(vip, key);
    return { key, networkId, vip, backends: validBackends(service?.backends, where) };
  });
  const portOwner = new Map<string, string>();
  const published = publishedItems.map((item, i): MeshService => {
    const service = fieldsOf(item);
    const key = service?.key;
    const where = `published[${i}] (${JSON.stringify(key)})`;
    validateKey(key, where, keys, 'mesh');
    const portItems = itemsOf(service?.ports);
    if (portItems === undefined) throw new NetworkInputError(`${where}.ports must be an array`);
    const ports = portItems.map((portItem, j): PublishedPort => {
      const port = fieldsOf(portItem);
      const publishedPort = validPort(port?.published, `${where}.ports[${j}].published`);
      const target = validPort(port?.target, `${where}.ports[${j}].target`);
      const protocol = validProtocol(port?.protocol, `${where}.ports[${j}].protocol`);
      const id = `${publishedPort}/${protocol}`;
      const owner = portOwner.get(id);
      if (owner !== undefined) throw new NetworkInputError(`${where}: port ${id} is already published by "${owner}"`);
      portOwner.set(id, key);
      return { published: publishedPort, target, protocol };
    });
    return { key, ports, backends: validBackends(service?.backends, where) };
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
