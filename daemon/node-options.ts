// The node settings as command-line options, shared by `tsd init|join|cleanup` and `tsctl cluster
// up`. NODE_FLAGS is the one list: tsd's parser is built from it, and so is the argv that tsctl
// hands to every tsd it starts (nodeArgv), so a flag cannot be parsed on one side and forgotten on
// the other. Its type has an entry for every DaemonConfig field, so a new setting must get a flag.
import { Command, InvalidArgumentError, Option } from 'commander';

import { defaultConfig, validateConfig, type DaemonConfig } from './config.js';

/** How a setting is written on the command line; follows from its type in DaemonConfig. */
type FlagKind<T> = [T] extends [boolean] ? 'switch' : [T] extends [number] ? 'integer' : [T] extends [readonly string[]] ? 'repeated' | 'comma-list' : 'text';

export interface NodeFlag<T> {
  /** Commander's flag spelling, e.g. `--data-root <dir>`. */
  spelling: string;
  description: string;
  kind: FlagKind<T>;
}

export type NodeFlags = { readonly [K in keyof DaemonConfig]-?: NodeFlag<DaemonConfig[K]> };

export const NODE_FLAGS: NodeFlags = {
  dataRoot: { spelling: '--data-root <dir>', description: 'where tsd keeps images, containers and logs', kind: 'text' },
  listen: { spelling: '--listen <address>', description: 'host:port of the mutual-TLS gRPC server (API, dispatcher, Raft)', kind: 'text' },
  metricsListen: {
    spelling: '--metrics-listen <address>',
    description: 'host:port of Prometheus /metrics, HTTPS with the cluster mutual TLS (default <advertise-address>:7421)',
    kind: 'text',
  },
  metricsInsecure: {
    spelling: '--metrics-insecure <address>',
    description: 'also serve /metrics in plain HTTP on this host:port (opt-in; metrics carry no secrets)',
    kind: 'text',
  },
  nodeName: { spelling: '--node-name <name>', description: "this node's name", kind: 'text' },
  bridge: { spelling: '--bridge <name>', description: 'container bridge link name', kind: 'text' },
  subnet: { spelling: '--subnet <cidr>', description: 'node-local container subnet', kind: 'text' },
  nftTable: { spelling: '--nft-table <name>', description: 'nftables table for port publishing', kind: 'text' },
  cgroupParent: { spelling: '--cgroup-parent <path>', description: 'parent cgroup of every container', kind: 'text' },
  insecureRegistries: { spelling: '--insecure-registry <host:port>', description: 'registry to reach over plain HTTP (repeatable)', kind: 'repeated' },
  heartbeatMs: { spelling: '--heartbeat-ms <ms>', description: 'agent heartbeat period', kind: 'integer' },
  nodeDownAfterMs: { spelling: '--node-down-after-ms <ms>', description: 'a node silent this long is down', kind: 'integer' },
  advertiseAddress: { spelling: '--advertise-address <ip>', description: 'address other nodes reach this node at', kind: 'text' },
  apiSocket: {
    spelling: '--api-socket <unix:/path>',
    description: 'managers: the API for root on this machine (0600; default unix:<data-root>/tsd.sock)',
    kind: 'text',
  },
  join: { spelling: '--join <address>', description: 'join the manager at this address as a worker instead of running a manager', kind: 'text' },
  tokenFile: {
    spelling: '--token-file <path>',
    description: 'join: read the join token from this file (- for stdin); default $TESSERA_JOIN_TOKEN',
    kind: 'text',
  },
  certValidityMs: { spelling: '--cert-validity-ms <ms>', description: 'init: lifetime of node certificates (renewed at 2/3)', kind: 'integer' },
  store: { spelling: '--store <backend>', description: 'cluster state: raft (replicated, durable), memory (tests) or etcd', kind: 'text' },
  etcdEndpoints: { spelling: '--etcd-endpoints <urls>', description: 'with --store etcd: comma-separated http://host:port list', kind: 'comma-list' },
  raftSnapshotEvery: {
    spelling: '--raft-snapshot-every <entries>',
    description: 'raft: snapshot and compact the log every this many entries',
    kind: 'integer',
  },
  historyRevisions: {
    spelling: '--history-revisions <n>',
    description: 'store revisions kept for watches to resume from; older ones are compacted (0: keep all)',
    kind: 'integer',
  },
  liveRestore: {
    spelling: '--live-restore',
    description: "on stop, leave this node's containers running for the next tsd to take over (as the systemd unit does)",
    kind: 'switch',
  },
  autolock: {
    spelling: '--autolock',
    description: 'init: protect the Raft keys with an unlock key (on no disk); a restarted manager waits for `tsctl cluster unlock`',
    kind: 'switch',
  },
  buildContextMaxBytes: {
    spelling: '--build-context-max-bytes <bytes>',
    description: 'managers: the largest build context (tsctl build) accepted, as tar bytes (default 512 MiB)',
    kind: 'integer',
  },
};

export type NodeSettingKey = keyof DaemonConfig;

/** Every setting, in the order of NODE_FLAGS (the order of `--help`). */
export const NODE_SETTING_KEYS = Object.keys(NODE_FLAGS) as NodeSettingKey[];

type AnyNodeFlag = Omit<NodeFlag<unknown>, 'kind'> & { kind: 'switch' | 'integer' | 'repeated' | 'comma-list' | 'text' };

function flagOf(key: NodeSettingKey): AnyNodeFlag {
  return NODE_FLAGS[key];
}

/** The long flag alone, e.g. `--data-root`. */
export function flagName(key: NodeSettingKey): string {
  return flagOf(key).spelling.split(' ')[0]!;
}

/** The property commander stores a flag's value under (`--insecure-registry` → insecureRegistry). */
export function optionAttribute(key: NodeSettingKey): string {
  return new Option(flagOf(key).spelling).attributeName();
}

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`expected an integer, got "${value}"`);
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function nodeOption(key: NodeSettingKey): Option {
  const flag = flagOf(key);
  const option = new Option(flag.spelling, flag.description);
  const fallback = defaultConfig()[key];
  if (flag.kind === 'integer') option.argParser(integer);
  if (flag.kind === 'repeated') option.argParser(collect);
  if (flag.kind === 'comma-list') option.argParser((v: string) => v.split(',').filter(Boolean));
  if (fallback !== undefined) option.default(fallback);
  return option;
}

export function withNodeOptions(command: Command): Command {
  for (const key of NODE_SETTING_KEYS) command.addOption(nodeOption(key));
  return command;
}

/** The validated configuration from options parsed by a command made with withNodeOptions. */
export function configFromOptions(options: Record<string, unknown>): DaemonConfig {
  const config = defaultConfig() as unknown as Record<NodeSettingKey, unknown>;
  for (const key of NODE_SETTING_KEYS) {
    const value = options[optionAttribute(key)];
    if (value !== undefined) config[key] = value;
  }
  const result = config as unknown as DaemonConfig;
  validateConfig(result);
  return result;
}

/**
 * The validated configuration of a tsd command: each setting from its flag when given on the
 * command line, else from the configuration file, else the default.
 */
export function configFromCommand(command: Command, file: Partial<Record<NodeSettingKey, unknown>>, extra: Partial<DaemonConfig> = {}): DaemonConfig {
  const options = command.opts();
  const merged: Record<string, unknown> = {};
  for (const key of NODE_SETTING_KEYS) {
    const attribute = optionAttribute(key);
    merged[attribute] = command.getOptionValueSource(attribute) === 'cli' ? options[attribute] : (file[key] ?? options[attribute]);
  }
  for (const [key, value] of Object.entries(extra)) merged[optionAttribute(key as NodeSettingKey)] = value;
  return configFromOptions(merged);
}

/**
 * The command-line options that give a tsd exactly this configuration: every setting, written
 * out even where it equals the default, so the node's /proc/PID/cmdline shows what it runs with.
 */
export function nodeArgv(config: DaemonConfig): string[] {
  const argv: string[] = [];
  for (const key of NODE_SETTING_KEYS) {
    const value: unknown = config[key];
    if (value === undefined) continue;
    const flag = flagName(key);
    switch (flagOf(key).kind) {
      case 'switch':
        if (value === true) argv.push(flag);
        break;
      case 'repeated':
        for (const item of value as string[]) argv.push(flag, item);
        break;
      case 'comma-list':
        // An empty list is the default; `--etcd-endpoints ''` would say the same less clearly.
        if ((value as string[]).length > 0) argv.push(flag, (value as string[]).join(','));
        break;
      case 'integer':
        argv.push(flag, String(value as number));
        break;
      case 'text':
        argv.push(flag, value as string);
    }
  }
  return argv;
}

/** What tsd makes of these options (the parser `tsd init` uses), validated. */
export function parseNodeArgv(argv: readonly string[]): DaemonConfig {
  const command = withNodeOptions(new Command('tsd-options'))
    .exitOverride()
    .configureOutput({ writeErr: () => {} });
  command.parse([...argv], { from: 'user' });
  return configFromOptions(command.opts());
}
