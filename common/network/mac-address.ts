// The MAC of an overlay endpoint, derived from its address: the agent gives its bridge and its
// containers these MACs, and the manager tells every node its peers' MACs by the same rule.
import { parseIpv4 } from './ipv4.js';

/**
 * Locally administered unicast MAC from an IPv4 address (Docker's 02:42 convention): unique as
 * long as addresses are, and any node can compute a remote endpoint's MAC itself.
 */
export function macForAddress(address: string): string {
  const value = parseIpv4(address);
  const octets = [0x02, 0x42, value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255];
  return octets.map((o) => o.toString(16).padStart(2, '0')).join(':');
}
