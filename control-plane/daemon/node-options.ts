// The node settings as command-line options, shared by `tsd run|cleanup` and `tsctl cluster up`
// so the two can never disagree about a flag's name or default.
import { Command, InvalidArgumentError } from 'commander';

import { defaultConfig, validateConfig, type DaemonConfig } from './config.js';

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`expected an integer, got "${value}"`);
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function withNodeOptions(command: Command): Command {
  const d = defaultConfig();
  return command
    .option('--data-root <dir>', 'where tsd keeps images, containers and logs', d.dataRoot)
    .option('--listen <address>', 'gRPC API address (host:port or unix:/path)', d.listen)
    .option('--metrics-listen <address>', 'Prometheus /metrics address', d.metricsListen)
    .option('--node-name <name>', 'this node\'s name', d.nodeName)
    .option('--bridge <name>', 'container bridge link name', d.bridge)
    .option('--subnet <cidr>', 'node-local container subnet', d.subnet)
    .option('--nft-table <name>', 'nftables table for port publishing', d.nftTable)
    .option('--cgroup-parent <path>', 'parent cgroup of every container', d.cgroupParent)
    .option('--insecure-registry <host:port>', 'registry to reach over plain HTTP (repeatable)', collect, d.insecureRegistries)
    .option('--heartbeat-ms <ms>', 'agent heartbeat period', integer, d.heartbeatMs)
    .option('--node-down-after-ms <ms>', 'a node silent this long is down', integer, d.nodeDownAfterMs)
    .option('--advertise-address <ip>', 'address other nodes reach this node at', d.advertiseAddress)
    .option('--api-socket <unix:/path>', 'also serve the API on this unix socket')
    .option('--join <address>', 'join the manager at this address as a worker instead of running a manager')
    .option('--token <token>', 'join token (with --join)')
    .option('--store <backend>', 'cluster state: raft (replicated, durable), memory (tests) or etcd', d.store)
    .option('--etcd-endpoints <urls>', 'with --store etcd: comma-separated http://host:port list', (v: string) => v.split(',').filter(Boolean), d.etcdEndpoints)
    .option('--raft-snapshot-every <entries>', 'raft: snapshot and compact the log every this many entries', integer, d.raftSnapshotEvery)
    .option('--history-revisions <n>', 'store revisions kept for watches to resume from; older ones are compacted (0: keep all)', integer, d.historyRevisions)
    .option('--insecure-transport', 'allow gRPC without TLS on non-loopback addresses (test clusters in private namespaces only)', d.insecureTransport);
}

/** The validated configuration from options parsed by a command made with withNodeOptions. */
export function configFromOptions(options: Record<string, unknown>): DaemonConfig {
  // The repeatable --insecure-registry flag arrives under commander's singular name.
  const { insecureRegistry, ...rest } = options;
  const config: DaemonConfig = { ...defaultConfig(), ...(rest as Partial<DaemonConfig>) };
  if (Array.isArray(insecureRegistry)) config.insecureRegistries = insecureRegistry.map(String);
  validateConfig(config);
  return config;
}
