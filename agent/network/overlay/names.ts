// Link names derived from ids, so a restarted agent finds what it created before without having
// stored names anywhere. (Endpoint MACs are derived from addresses: common/network/mac-address.ts.)

import { createHash } from 'node:crypto';

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
