// Public face of overlay service discovery for the agent.
export { ServiceResolver, type ServiceResolverConfig } from './service-resolver.js';
export { NameTable, type LookupResult } from './name-table.js';
export { parseResolvConf } from './resolv-conf.js';
export type { DnsUpstream, ResolverListen } from './types.js';
