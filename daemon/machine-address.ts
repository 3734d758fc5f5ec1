// The machine's own address, for tsd's default --advertise-address: the IPv4 address of the link
// the default route leaves by, as Swarm picks it. On a machine without a default route (an
// isolated lab network), the only non-loopback IPv4 address if there is exactly one; otherwise
// none, and the operator must say which (tsd then advertises loopback, which only a single node
// can use, and says so at start).
import { readFileSync } from 'node:fs';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';

/** The link of the first default route in /proc/net/route's text (destination and mask 0). Pure. */
export function defaultRouteLink(routeTable: string): string | undefined {
  for (const line of routeTable.split('\n').slice(1)) {
    const [link, destination, , , , , , mask] = line.trim().split(/\s+/);
    if (link && destination === '00000000' && mask === '00000000') return link;
  }
  return undefined;
}

/** The advertise address these links and this default-route link suggest, if one is clear. Pure. */
export function chooseMachineAddress(links: Record<string, NetworkInterfaceInfo[] | undefined>, routeLink: string | undefined): string | undefined {
  const ipv4 = (infos: NetworkInterfaceInfo[] | undefined) => (infos ?? []).filter((i) => i.family === 'IPv4' && !i.internal).map((i) => i.address);
  if (routeLink !== undefined) {
    const [first] = ipv4(links[routeLink]);
    if (first !== undefined) return first;
  }
  const all = Object.values(links).flatMap(ipv4);
  return all.length === 1 ? all[0] : undefined;
}

let detected: { address: string | undefined } | undefined;

/** This machine's address as others would reach it, looked up once per process. */
export function machineAddress(): string | undefined {
  if (detected === undefined) {
    let routeTable = '';
    try {
      routeTable = readFileSync('/proc/net/route', 'utf8');
    } catch {
      // No /proc/net/route (not Linux, or no procfs): fall back to the links alone.
    }
    detected = { address: chooseMachineAddress(networkInterfaces(), defaultRouteLink(routeTable)) };
  }
  return detected.address;
}
