// The DNS resolver's settings. What it answers (DnsRecords) comes from the manager's node view:
// common/network/dns-records.ts.

export interface DnsUpstream {
  address: string;
  port: number;
}

export interface ResolverListen {
  /** Usually the network's gateway address. */
  address: string;
  /** Default 53. */
  port?: number;
}
