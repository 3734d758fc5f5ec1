// Link names and MACs derived from ids, so a restarted agent finds what it created before
// without having stored names anywhere.

import { createHash } from 'node:crypto';
import { parseIpv4 } from '../ipv4.js';

/** All overlay bridges share this prefix: the isolation rules match other bridges by it. */
export const OVERLAY_BRIDGE_PREFIX = 'tsob';
export const OVERLAY_VXLAN_PREFIX = 'tsox';
export const OVERLAY_VETH_PREFIX = 'tsov';
export const VXLAN_PORT = 4789;
export const VXLAN_OVERHEAD = 50;

/** Prefix + 11 hex digits = 15 characters (IFNAMSIZ - 1); 44 bits make clashes negligible. */
function hashed(prefix: string, key: string): string {
  return prefix + createHash('sha256').update(key).digest('hex').slice(0, 11);
}

export function overlayBridgeName(networkId: string): string {
  return hashed(OVERLAY_BRIDGE_PREFIX, networkId);
}

export function overlayVxlanName(networkId: string): string {
  return hashed(OVERLAY_VXLAN_PREFIX, networkId);
}

export function overlayVethName(networkId: string, containerId: string): string {
  return hashed(OVERLAY_VETH_PREFIX, `${networkId}\0${containerId}`);
}

/**
 * Locally administered unicast MAC from an IPv4 address (Docker's 02:42 convention): unique as
 * long as addresses are, and any node can compute a remote endpoint's MAC itself.
 */
export function macForAddress(address: string): string {
  const value = parseIpv4(address);
  const octets = [0x02, 0x42, value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255];
  return octets.map((o) => o.toString(16).padStart(2, '0')).join(':');
}
