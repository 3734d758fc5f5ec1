// What the DNS resolver of one network answers, as the dispatcher sends it in a node's view and
// the agent's resolver serves it.

export interface DnsService {
  /** Names the service answers to, e.g. ["web", "shop_web"]; matched case-insensitively. */
  names: string[];
  /** "vip": NAME → the VIP. "dnsrr": NAME → task addresses (shuffled). tasks.NAME is always tasks. */
  endpointMode: 'vip' | 'dnsrr';
  /** The service's VIP on this network (vip mode). */
  vip?: string;
  /** Addresses of the service's running tasks on this network. */
  tasks: string[];
}

/** Further names: container hostnames and network aliases. */
export interface DnsAlias {
  name: string;
  addresses: string[];
}

export interface DnsRecords {
  services: DnsService[];
  aliases: DnsAlias[];
}
