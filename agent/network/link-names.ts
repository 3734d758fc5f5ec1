// Interface names derived from container ids. Deterministic, so a restarted tsd finds the veth
// of a container it attached before without having stored the name anywhere.

import { createHash } from 'node:crypto';

const HOST_VETH_PREFIX = 'tsv';

/** "tsv" + 12 hex digits = 15 characters, the most IFNAMSIZ allows; 48 bits make clashes negligible. */
export function hostVethName(containerId: string): string {
  return HOST_VETH_PREFIX + createHash('sha256').update(containerId).digest('hex').slice(0, 12);
}

/** The name the container sees, like every other container runtime. */
export const CONTAINER_IFNAME = 'eth0';
