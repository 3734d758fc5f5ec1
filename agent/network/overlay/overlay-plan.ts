// Pure planning for the overlay: validating the desired peers of one network, diffing them
// against what is programmed, and the nftables isolation/SNAT table. No I/O, so every command the
// driver sends is unit-tested without a kernel.

import { NetworkInputError, cidrContains, isIpv4, parseCidr, parseIpv4, type Ipv4Cidr } from '../../../common/network/ipv4.js';
import type { BatchLine } from './batch-session.js';
import { OVERLAY_BRIDGE_PREFIX, VXLAN_OVERHEAD } from './names.js';
import type { OverlayNetworkSpec } from './types.js';
import { fieldsOf, itemsOf } from '../input.js';

const ZERO_MAC = '00:00:00:00:00:00';
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const MISSING = /No such file|not found|Cannot find|does not exist/i;
const EXISTS = /File exists/i;

/** What a network's VXLAN device has programmed: the mirror of its FDB and neighbour table. */
export interface PeerState {
  /** Underlay addresses that get a copy of broadcast, unknown-unicast and multicast frames. */
  flood: Set<string>;
  /** Endpoint MAC → underlay address of the node that has it. */
  macs: Map<string, string>;
  /** Endpoint address → MAC, answered by the VXLAN device's ARP proxy. */
  neighbours: Map<string, string>;
}

export function emptyPeerState(): PeerState {
  return { flood: new Set(), macs: new Map(), neighbours: new Map() };
}

export interface ValidNetwork {
  spec: OverlayNetworkSpec;
  cidr: Ipv4Cidr;
  mtu: number;
}

/** `input` (an OverlayNetworkSpec) comes from the managers' view: checked here, field by field. */
export function validateNetworkSpec(input: unknown, underlayMtu: number): ValidNetwork {
  const spec = fieldsOf(input);
  const where = `overlay network ${JSON.stringify(spec?.name ?? spec?.id)}`;
  if (spec === undefined) throw new NetworkInputError('overlay network spec must be an object');
  const { id, name, vni, subnet } = spec;
  if (typeof id !== 'string' || id.length === 0 || id.length > 256) {
    throw new NetworkInputError(`${where}: id must be 1-256 characters`);
  }
  if (typeof name !== 'string' || name.length === 0) throw new NetworkInputError(`${where}: name must be set`);
  if (typeof vni !== 'number' || !Number.isInteger(vni) || vni < 1 || vni > 0xffffff) {
    throw new NetworkInputError(`${where}: vni must be an integer from 1 to 16777215, got ${String(vni)}`);
  }
  let cidr: Ipv4Cidr;
  try {
    if (typeof subnet !== 'string') throw new NetworkInputError(`must be a string, got ${String(subnet)}`);
    cidr = parseCidr(subnet);
  } catch (error) {
    throw new NetworkInputError(`${where}: subnet: ${(error as Error).message}`);
  }
  const addressIn = (field: 'gateway' | 'nodeAddress'): string => {
    const value = spec[field];
    if (typeof value !== 'string' || !isIpv4(value)) throw new NetworkInputError(`${where}: ${field} "${String(value)}" is not an IPv4 address`);
    if (!cidrContains(cidr, parseIpv4(value))) throw new NetworkInputError(`${where}: ${field} ${value} is outside ${cidr.text}`);
    return value;
  };
  const gateway = addressIn('gateway');
  const nodeAddress = addressIn('nodeAddress');
  if (gateway === nodeAddress) throw new NetworkInputError(`${where}: nodeAddress must differ from the gateway ${gateway}`);
  const mtu: unknown = spec.mtu ?? underlayMtu - VXLAN_OVERHEAD;
  if (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < 576 || mtu > 65_535 - VXLAN_OVERHEAD) {
    throw new NetworkInputError(`${where}: mtu must be an integer from 576 to ${65_535 - VXLAN_OVERHEAD}, got ${String(mtu)}`);
  }
  const valid: OverlayNetworkSpec = { id, name, vni, subnet, gateway, nodeAddress };
  if (spec.mtu !== undefined) valid.mtu = mtu;
  return { spec: valid, cidr, mtu };
}

export function validateMac(mac: unknown, what: string): string {
  const lower = typeof mac === 'string' ? mac.toLowerCase() : '';
  if (!MAC.test(lower)) throw new NetworkInputError(`${what}: "${String(mac)}" is not a MAC address (xx:xx:xx:xx:xx:xx)`);
  if ((parseInt(lower.slice(0, 2), 16) & 1) === 1) throw new NetworkInputError(`${what}: ${lower} is a multicast MAC`);
  if (lower === ZERO_MAC) throw new NetworkInputError(`${what}: the all-zero MAC is not an endpoint`);
  return lower;
}

/**
 * Turns the peer list into the state to program. The local node is skipped (its endpoints are on
 * the bridge itself); an address or MAC claimed twice is rejected rather than guessed at.
 */
/** `input` (OverlayPeer[]) comes from the managers' view: checked here, field by field. */
export function desiredPeerState(network: ValidNetwork, localUnderlayAddress: string, input: unknown): PeerState {
  const where = `peers of overlay network "${network.spec.name}"`;
  const peers = itemsOf(input);
  if (peers === undefined) throw new NetworkInputError(`${where} must be an array`);
  const state = emptyPeerState();
  const macOwner = new Map<string, string>();
  const seenNodes = new Set<string>();
  for (const [i, item] of peers.entries()) {
    const peer = fieldsOf(item);
    const node = peer?.nodeUnderlayAddress;
    if (typeof node !== 'string' || !isIpv4(node)) throw new NetworkInputError(`${where}[${i}].nodeUnderlayAddress "${String(node)}" is not an IPv4 address`);
    if (seenNodes.has(node)) throw new NetworkInputError(`${where}[${i}]: node ${node} is listed twice`);
    seenNodes.add(node);
    const endpoints = itemsOf(peer?.endpoints);
    if (endpoints === undefined) throw new NetworkInputError(`${where}[${i}].endpoints must be an array`);
    if (node === localUnderlayAddress) continue;
    state.flood.add(node);
    for (const [j, endpointItem] of endpoints.entries()) {
      const what = `${where}[${i}].endpoints[${j}]`;
      const endpoint = fieldsOf(endpointItem);
      const address = endpoint?.address;
      if (typeof address !== 'string' || !isIpv4(address)) throw new NetworkInputError(`${what}.address "${String(address)}" is not an IPv4 address`);
      if (!cidrContains(network.cidr, parseIpv4(address))) throw new NetworkInputError(`${what}.address ${address} is outside ${network.cidr.text}`);
      if (address === network.spec.gateway) throw new NetworkInputError(`${what}.address ${address} is the gateway`);
      const mac = validateMac(endpoint?.mac, `${what}.mac`);
      if (state.neighbours.has(address)) throw new NetworkInputError(`${what}: address ${address} is listed twice`);
      const owner = macOwner.get(mac);
      if (owner !== undefined) throw new NetworkInputError(`${what}: MAC ${mac} is also used by ${owner}`);
      macOwner.set(mac, address);
      state.neighbours.set(address, mac);
      state.macs.set(mac, node);
    }
  }
  return state;
}

export interface PeerCommands {
  /** `bridge -batch` lines: VXLAN FDB. */
  fdb: BatchLine[];
  /** `ip -batch` lines: neighbour (ARP proxy) entries. */
  neighbours: BatchLine[];
}

/** Additions before removals, so an endpoint that moves nodes is never unreachable in between. */
export function diffPeerState(current: PeerState, desired: PeerState, vxlan: string): PeerCommands {
  const fdb: BatchLine[] = [];
  const neighbours: BatchLine[] = [];
  for (const node of sorted(desired.flood)) {
    if (!current.flood.has(node)) fdb.push({ command: `fdb append ${ZERO_MAC} dev ${vxlan} dst ${node} self permanent`, tolerate: EXISTS });
  }
  for (const [mac, node] of sortedEntries(desired.macs)) {
    if (current.macs.get(mac) !== node) fdb.push({ command: `fdb replace ${mac} dev ${vxlan} dst ${node} self permanent` });
  }
  for (const [address, mac] of sortedEntries(desired.neighbours)) {
    if (current.neighbours.get(address) !== mac) {
      neighbours.push({ command: `neigh replace ${address} lladdr ${mac} dev ${vxlan} nud permanent` });
    }
  }
  for (const [mac] of sortedEntries(current.macs)) {
    if (!desired.macs.has(mac)) fdb.push({ command: `fdb del ${mac} dev ${vxlan} self`, tolerate: MISSING });
  }
  for (const node of sorted(current.flood)) {
    if (!desired.flood.has(node)) fdb.push({ command: `fdb del ${ZERO_MAC} dev ${vxlan} dst ${node} self`, tolerate: MISSING });
  }
  for (const [address] of sortedEntries(current.neighbours)) {
    if (!desired.neighbours.has(address)) neighbours.push({ command: `neigh del ${address} dev ${vxlan}`, tolerate: MISSING });
  }
  return { fdb, neighbours };
}

/** Rebuilds the mirror from `bridge -j fdb show dev VX` and `ip -j neigh show dev VX`. */
export function peerStateFromKernel(fdbJson: unknown, neighJson: unknown): PeerState {
  const state = emptyPeerState();
  for (const entry of Array.isArray(fdbJson) ? (fdbJson as unknown[]) : []) {
    if (!isRecord(entry) || typeof entry.mac !== 'string' || typeof entry.dst !== 'string') continue;
    if (entry.mac === ZERO_MAC) state.flood.add(entry.dst);
    else state.macs.set(entry.mac.toLowerCase(), entry.dst);
  }
  for (const entry of Array.isArray(neighJson) ? (neighJson as unknown[]) : []) {
    if (!isRecord(entry) || typeof entry.dst !== 'string' || typeof entry.lladdr !== 'string') continue;
    state.neighbours.set(entry.dst, entry.lladdr.toLowerCase());
  }
  return state;
}

export interface IsolationEntry {
  bridge: string;
  nodeAddress: string;
}

/**
 * The whole overlay table, replaced in one transaction:
 * - forward: nothing is routed from one overlay bridge into another (the node holds an address
 *   on every network, so without this it would route between them); traffic the node itself
 *   DNATed (published ports) is exempt, VIP rules only match on their own network's bridge.
 * - postrouting: what the node DNATs into a network (VIP, routing mesh) leaves with the node's
 *   own address there, so the replica's reply returns through this node to be un-NATed.
 */
export function overlayTableScript(table: string, networks: IsolationEntry[]): string {
  const t = `ip ${table}`;
  const entries = [...networks].sort((a, b) => a.bridge.localeCompare(b.bridge));
  const out = [
    `add table ${t}`,
    `delete table ${t}`,
    `add table ${t}`,
    `add chain ${t} forward { type filter hook forward priority filter; policy accept; }`,
    `add chain ${t} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
    `add rule ${t} forward ct status dnat accept`,
    ...entries.map((e) => `add rule ${t} forward iifname "${e.bridge}" oifname "${OVERLAY_BRIDGE_PREFIX}*" oifname != "${e.bridge}" drop`),
    ...entries.map((e) => `add rule ${t} postrouting oifname "${e.bridge}" ct status dnat snat to ${e.nodeAddress}`),
  ];
  return out.join('\n') + '\n';
}

export function deleteTableScript(table: string): string {
  return `add table ip ${table}\ndelete table ip ${table}\n`;
}

export function gatewayCidr(network: ValidNetwork): string {
  return `${network.spec.gateway}/${network.cidr.prefixLength}`;
}

export function nodeAddressCidr(network: ValidNetwork): string {
  return `${network.spec.nodeAddress}/${network.cidr.prefixLength}`;
}

function sorted(values: Iterable<string>): string[] {
  return [...values].sort();
}

function sortedEntries(map: Map<string, string>): Array<[string, string]> {
  return [...map.entries()].sort(([a], [b]) => a.localeCompare(b));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
