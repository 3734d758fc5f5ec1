// `tsctl cluster up|down`: a single-node cluster in this machine's network namespace, or (with
// --nodes N) a cluster of network-namespace nodes. Every tsd flag `cluster up` accepts either
// reaches every node's tsd or is refused with the reason (CLUSTER_UP_RULES), and both paths write
// the tsd command line from the one flag list in daemon/node-options.ts.
import { spawn } from 'node:child_process';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { type Command, InvalidArgumentError } from 'commander';

import { dataPaths, apiSocketOf, metricsListenOf, validateConfig, type DaemonConfig } from '../daemon/config.js';
import { configFromOptions, flagName, nodeArgv, optionAttribute, withNodeOptions, NODE_SETTING_KEYS, type NodeSettingKey } from '../daemon/node-options.js';
import type { Node } from '../common/resources/types.js';
// The netns cluster and the daemon's clean-up are imported where `up` and `down` use them: they
// bring the runtime, the native addon and netlink, which every other tsctl command paid for at
// start (tsctl build's start-up was profiled; see bench:build).
import type { NetnsClusterOptions, NetnsDerivedSetting, SharedNodeSettings } from './local-cluster/netns-cluster.js';
import { connect } from './client.js';
import { readContext, removeContext, writeContext } from './context.js';
import { processAlive, processStartTime } from '../agent/runtime/process-alive.js';
import { isAbsent } from '../agent/fs-errors.js';

const READY_TIMEOUT_MS = 60_000;
/** Where a single-node `cluster up` listens unless --listen says otherwise. */
const LOCAL_LISTEN = '127.0.0.1:7420';
const STOP_TIMEOUT_MS = 60_000;

/** The single-node cluster's tsd arguments: every setting, as given or defaulted. */
function singleNodeTsdArgv(config: DaemonConfig): string[] {
  return ['run', ...nodeArgv(config)];
}

function tsdMainPath(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', 'daemon', 'main.js');
}

/**
 * What `cluster up` does with each tsd setting:
 * - every-node: the value (given or default) goes to every node's tsd, as given;
 * - per-node: the cluster derives each node's value from it (the description says how);
 * - one-node-only: goes to the tsd of a single-node cluster; refused with --nodes above 1, because
 *   each node of a multi-node cluster needs its own value and the cluster derives it;
 * - refused: has no meaning for `cluster up` at all.
 * The type makes every setting need an entry, so a flag added to tsd cannot be dropped here.
 */
export type ClusterUpRule =
  { kind: 'every-node' } | { kind: 'per-node'; how: string } | { kind: 'one-node-only'; why: string } | { kind: 'refused'; why: string };

const OWN_NAME_AND_ADDRESSES = 'each node of a multi-node cluster gets its own';

export const CLUSTER_UP_RULES: {
  readonly [K in NodeSettingKey]-?: K extends NetnsDerivedSetting ? Exclude<ClusterUpRule, { kind: 'every-node' }> : ClusterUpRule;
} = {
  dataRoot: { kind: 'per-node', how: 'node N keeps its data under <data-root>/cluster/node-N' },
  listen: {
    kind: 'one-node-only',
    why: `it names one API address; ${OWN_NAME_AND_ADDRESSES} (<underlay address>:7420, and node-1's API is also on <data-root>/cluster/node-1/api.sock)`,
  },
  metricsListen: { kind: 'one-node-only', why: `it names one metrics address; ${OWN_NAME_AND_ADDRESSES} (<underlay address>:7421)` },
  metricsInsecure: {
    kind: 'one-node-only',
    why: 'it names one plain-HTTP metrics address; the nodes of a multi-node cluster serve /metrics over mutual TLS only',
  },
  nodeName: { kind: 'one-node-only', why: 'the nodes are named node-1 … node-N' },
  bridge: { kind: 'every-node' },
  subnet: { kind: 'one-node-only', why: `container subnets must not overlap across nodes; ${OWN_NAME_AND_ADDRESSES} /24 (10.X.N.0/24)` },
  nftTable: { kind: 'every-node' },
  cgroupParent: { kind: 'per-node', how: "node N's containers go under <cgroup-parent>/<netns-prefix>/node-N" },
  insecureRegistries: { kind: 'every-node' },
  heartbeatMs: { kind: 'every-node' },
  nodeDownAfterMs: { kind: 'every-node' },
  advertiseAddress: { kind: 'one-node-only', why: `it names one address; ${OWN_NAME_AND_ADDRESSES} underlay address (172.31.<underlay-octet>.N)` },
  apiSocket: { kind: 'one-node-only', why: `it names one socket; ${OWN_NAME_AND_ADDRESSES} manager socket (<data-root>/cluster/node-N/api.sock)` },
  join: { kind: 'refused', why: 'cluster up starts a new cluster; to add this machine to an existing one run `tsd join --token-file FILE MANAGER:7420`' },
  tokenFile: {
    kind: 'refused',
    why: 'cluster up starts a new cluster and makes its own join tokens; to join an existing one run `tsd join --token-file FILE MANAGER:7420`',
  },
  certValidityMs: { kind: 'every-node' },
  store: { kind: 'every-node' },
  etcdEndpoints: { kind: 'every-node' },
  raftSnapshotEvery: { kind: 'every-node' },
  historyRevisions: { kind: 'every-node' },
  liveRestore: { kind: 'every-node' },
  autolock: { kind: 'every-node' },
  buildContextMaxBytes: { kind: 'every-node' },
};

/** Options of `cluster up` that are not tsd settings: they shape the cluster itself. */
export const CLUSTER_SHAPE_OPTIONS = ['nodes', 'managers', 'netnsPrefix', 'underlayOctet'] as const;
type ClusterShape = { nodes: number; managers: number; netnsPrefix: string; underlayOctet: number };
const SHAPE_DEFAULTS: ClusterShape = { nodes: 1, managers: 1, netnsPrefix: 'tsc', underlayOctet: 213 };
/** Shape options that only mean something for a cluster of network namespaces. */
const NETNS_ONLY: ReadonlyArray<{ key: keyof ClusterShape; flag: string }> = [
  { key: 'netnsPrefix', flag: '--netns-prefix' },
  { key: 'underlayOctet', flag: '--underlay-octet' },
];

/** What `cluster up` will start: one tsd here, or a cluster of network-namespace nodes. */
export type ClusterUpPlan = { kind: 'single'; config: DaemonConfig; tsdArgv: string[] } | { kind: 'netns'; cluster: NetnsClusterOptions };

function wholeNumber(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`expected a whole number, got "${value}"`);
  return n;
}

/**
 * Declares `cluster up` under `cluster`; its action turns the parsed options into a plan and hands
 * it to `start` (tsctl starts the cluster; the unit tests look at the plan).
 */
export function registerClusterUp(cluster: Command, start: (plan: ClusterUpPlan) => Promise<void>): Command {
  return withNodeOptions(
    cluster
      .command('up')
      .description('start a local cluster in the background (embedded store); harmless if it is already up')
      .option('--nodes <n>', 'nodes; more than 1 puts each node in a network namespace of its own', wholeNumber, SHAPE_DEFAULTS.nodes)
      .option('--managers <m>', 'how many of the nodes are managers', wholeNumber, SHAPE_DEFAULTS.managers)
      .option(
        '--netns-prefix <name>',
        "with --nodes N: names the cluster's namespaces, links and cgroups (1-8 of a-z0-9; one per concurrent cluster)",
        SHAPE_DEFAULTS.netnsPrefix,
      )
      .option(
        '--underlay-octet <X>',
        'with --nodes N: the underlay is 172.31.X.0/24, this machine .254 (one per concurrent cluster)',
        wholeNumber,
        SHAPE_DEFAULTS.underlayOctet,
      ),
  ).action(async (options: Record<string, unknown>, command: Command) => {
    const given = new Set<string>(Object.keys(options).filter((attr) => command.getOptionValueSource(attr) === 'cli'));
    await start(planClusterUp(options, given));
  });
}

/**
 * The pure translation of `cluster up`'s options: `options` as commander parsed them, `given` the
 * attributes the user wrote on the command line (a refused flag is refused only when given).
 */
export function planClusterUp(options: Record<string, unknown>, given: ReadonlySet<string>): ClusterUpPlan {
  const shape: ClusterShape = { ...SHAPE_DEFAULTS };
  for (const key of CLUSTER_SHAPE_OPTIONS) if (options[key] !== undefined) Object.assign(shape, { [key]: options[key] });
  if (!(shape.nodes >= 1)) throw new Error(`--nodes must be a positive integer, got ${String(shape.nodes)}`);
  if (!(shape.managers >= 1 && shape.managers <= shape.nodes))
    throw new Error(`--managers must be from 1 to the number of nodes (${shape.nodes}), got ${String(shape.managers)}`);
  const multiNode = shape.nodes > 1;
  const refusals: string[] = [];
  for (const key of NODE_SETTING_KEYS) {
    if (!given.has(optionAttribute(key))) continue;
    const rule: ClusterUpRule = CLUSTER_UP_RULES[key];
    if (rule.kind === 'refused') refusals.push(`${flagName(key)}: ${rule.why}`);
    if (rule.kind === 'one-node-only' && multiNode) refusals.push(`${flagName(key)} cannot be used with --nodes ${shape.nodes}: ${rule.why}`);
  }
  if (!multiNode) {
    for (const { key, flag } of NETNS_ONLY)
      if (given.has(key)) refusals.push(`${flag} only applies with --nodes above 1 (a single-node cluster runs in this machine's network namespace)`);
  }
  if (refusals.length > 0) throw new Error(`tsctl cluster up:\n  ${refusals.join('\n  ')}`);
  if (!multiNode) {
    // A local cluster stays on this machine unless told otherwise: tsd's own defaults are the machine's address.
    const local = { ...options };
    if (!given.has(optionAttribute('listen'))) local[optionAttribute('listen')] = LOCAL_LISTEN;
    if (!given.has(optionAttribute('advertiseAddress'))) local[optionAttribute('advertiseAddress')] = '127.0.0.1';
    const config = configFromOptions(local);
    return { kind: 'single', config, tsdArgv: singleNodeTsdArgv(config) };
  }
  const config = configFromOptions(options);
  return { kind: 'netns', cluster: netnsOptions(config, shape) };
}

/** The netns cluster's options: the every-node settings as given, the per-node ones as bases. */
function netnsOptions(config: DaemonConfig, shape: ClusterShape): NetnsClusterOptions {
  const daemon: Record<string, unknown> = {};
  for (const key of NODE_SETTING_KEYS) if (CLUSTER_UP_RULES[key].kind === 'every-node') daemon[key] = config[key];
  return {
    prefix: shape.netnsPrefix,
    nodes: shape.nodes,
    managers: shape.managers,
    baseDir: join(config.dataRoot, 'cluster'),
    underlayOctet: shape.underlayOctet,
    hostBridge: true,
    cgroupParent: config.cgroupParent,
    daemon: daemon as SharedNodeSettings,
  };
}

/** Starts what the plan says. */
export async function startClusterUp(plan: ClusterUpPlan, out: (line: string) => void): Promise<void> {
  if (plan.kind === 'single') await clusterUp(plan.config, out);
  else await clusterUpNetns(plan.cluster, out);
}

/** Resolves when the API answers and this node reports ready; throws with tsd's last words otherwise. */
async function waitReady(config: DaemonConfig, pid: number, startTime: number | undefined): Promise<void> {
  const client = connect(localApi(config));
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastError: string | undefined;
  try {
    while (Date.now() < deadline) {
      if (!processAlive(pid, startTime)) break;
      try {
        const res = await client.list({ kind: 'Node', allStacks: true }, 2000);
        const nodes = res.objectsJson.map((j) => JSON.parse(j) as Node);
        if (nodes.some((n) => n.metadata.name === config.nodeName && n.status.state === 'ready')) return;
      } catch (err) {
        // Not listening yet: asked again until the deadline, and the last answer goes in the error.
        lastError = err instanceof Error ? err.message : String(err);
      }
      await sleep(200);
    }
  } finally {
    client.close();
  }
  const log = dataPaths(config).daemonLog;
  const tail = await readFile(log, 'utf8').then(
    (t) => `last lines of ${log}:\n${t.split('\n').slice(-15).join('\n')}`,
    (err: unknown) => (isAbsent(err) ? `tsd wrote no ${log}` : `could not read ${log}: ${(err as Error).message}`),
  );
  const said = lastError === undefined ? '' : `; the API last said: ${lastError}`;
  throw new Error(`tsd did not become ready (${processAlive(pid, startTime) ? 'still starting after 60 s' : 'it exited'})${said}; ${tail}`);
}

/** The single-node cluster's root-only API socket, which tsctl on this machine talks to. */
function localApi(config: DaemonConfig): string {
  return apiSocketOf(config);
}

export async function clusterUp(config: DaemonConfig, out: (line: string) => void): Promise<void> {
  validateConfig(config);
  const existing = await readContext();
  if (existing?.local && processAlive(existing.local.pid, existing.local.startTime)) {
    await waitReady(existing.local.config, existing.local.pid, existing.local.startTime);
    out(`cluster is already up (tsd pid ${existing.local.pid}, API ${existing.server})`);
    return;
  }
  const paths = dataPaths(config);
  await mkdir(config.dataRoot, { recursive: true });
  // tsd's output is root's alone (0600), also in a log an older version made 0644.
  const logFile = await open(paths.daemonLog, 'a', 0o600);
  await logFile.chmod(0o600);
  const child = spawn(process.execPath, ['--enable-source-maps', tsdMainPath(), ...singleNodeTsdArgv(config)], {
    detached: true,
    stdio: ['ignore', logFile.fd, logFile.fd],
  });
  await logFile.close();
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start tsd');
  child.unref();
  // Recorded with the PID, so that a later tsctl tells this tsd from a zombie or a reused PID.
  const startTime = processStartTime(pid);
  await writeContext({ server: localApi(config), local: { pid, ...(startTime === undefined ? {} : { startTime }), config } });
  try {
    await waitReady(config, pid, startTime);
  } catch (err) {
    if (processAlive(pid, startTime)) process.kill(pid, 'SIGTERM');
    await removeContext();
    throw err;
  }
  out(
    `cluster is up: node ${config.nodeName} ready, tsd pid ${pid}, API ${localApi(config)} (root) and ${config.listen} (mutual TLS), metrics https://${metricsListenOf(config)}/metrics (mutual TLS)`,
  );
  out(`tsd log: ${paths.daemonLog}`);
}

/**
 * `cluster up --nodes N` (N > 1): every node in a network namespace of its own, on an underlay
 * bridge in this machine's namespace (172.31.X.0/24, the host is .254), so the nodes are
 * reachable from here.
 */
export async function clusterUpNetns(options: NetnsClusterOptions, out: (line: string) => void): Promise<void> {
  const { nodes } = options;
  const managers = options.managers ?? 1;
  const { createNetnsCluster, nodeRunning } = await import('./local-cluster/netns-cluster.js');
  const existing = await readContext();
  if (existing?.netns && existing.netns.nodes.some(nodeRunning)) {
    out(`a ${existing.netns.nodes.length}-node cluster is already up (API ${existing.server}); run tsctl cluster down first to change it`);
    return;
  }
  if (existing?.local && processAlive(existing.local.pid, existing.local.startTime)) {
    throw new Error('a single-node cluster is up; run tsctl cluster down before building a multi-node one');
  }
  const state = await createNetnsCluster(options);
  // Every manager's socket, so that tsctl goes on at another when node-1's tsd is down (issue 20).
  const managerSockets = state.nodes.flatMap((n) => (n.role === 'manager' && n.apiSocket !== undefined ? [n.apiSocket] : []));
  await writeContext({ server: state.apiSocket, servers: managerSockets, netns: state });
  const managerNames = state.nodes.filter((n) => n.role === 'manager').map((n) => n.name);
  out(
    managers === 1
      ? `cluster is up: ${nodes} nodes ready (node-1 is the manager at ${state.managerAddress}; API also at ${state.apiSocket})`
      : `cluster is up: ${nodes} nodes ready, managers ${managerNames.join(', ')} (node-1 at ${state.managerAddress}; API also at ${state.apiSocket})`,
  );
  for (const node of state.nodes)
    out(`  ${node.name}  ${node.role.padEnd(7)}  ${node.underlayAddress}  netns ${node.netns}  log ${join(node.dataRoot, 'tsd.log')}`);
}

export async function clusterDown(out: (line: string) => void): Promise<void> {
  const context = await readContext();
  if (context?.netns) {
    const { destroyNetnsCluster } = await import('./local-cluster/netns-cluster.js');
    await destroyNetnsCluster(context.netns, out);
    await removeContext();
    out(`cluster is down: ${context.netns.nodes.length} nodes, their namespaces, containers, cgroups and the underlay bridge removed`);
    return;
  }
  if (!context?.local) {
    out('no local cluster is recorded in the tsctl context; nothing to stop');
    return;
  }
  const { pid, startTime, config } = context.local;
  if (processAlive(pid, startTime)) {
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    while (processAlive(pid, startTime) && Date.now() < deadline) await sleep(100);
    if (processAlive(pid, startTime)) {
      out(`tsd (pid ${pid}) did not stop within ${STOP_TIMEOUT_MS / 1000} s; killing it`);
      process.kill(pid, 'SIGKILL');
      while (processAlive(pid, startTime)) await sleep(100);
    }
  }
  // Whatever tsd could not remove itself (it may have been killed) goes now.
  const { cleanupNode } = await import('../daemon/cleanup.js');
  await cleanupNode(config, out);
  await rm(join(config.dataRoot, 'containers'), { recursive: true, force: true });
  // The cluster itself goes too (like deleting a kind cluster): the next `up` starts empty.
  await rm(join(config.dataRoot, 'raft'), { recursive: true, force: true });
  // And its identity: the next `up` is a new cluster with a new root CA.
  await rm(join(config.dataRoot, 'certs'), { recursive: true, force: true });
  await removeContext();
  out('cluster is down: containers, mounts, links, cgroups and rules removed');
}
