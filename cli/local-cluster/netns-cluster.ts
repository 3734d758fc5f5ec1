// A local multi-node cluster on one Linux machine: every node is a network namespace with its own
// underlay address on a bridge made for the cluster, its own hostname (UTS namespace), data root
// and cgroup parent, running its own tsd. `tsctl cluster up --nodes N` and the test suite both use
// this code. Everything it makes is named with the cluster's prefix and recorded in the returned
// state, so `destroyNetnsCluster` removes exactly that, also after a crash.
import { execFile, spawn } from 'node:child_process';
import { mkdir, open, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

import { unlessAbsent, isAbsent } from '../../agent/fs-errors.js';
import { forget, remember } from './live-clusters.js';
import { cgroupHierarchies } from './cgroup-hierarchies.js';
import { processAlive, processStartTime } from '../../agent/runtime/process-alive.js';
import { ApiClient } from '../client.js';
import { LOCAL_INSECURE } from '../../common/transport/credentials.js';
import { defaultConfig, validateConfig, type DaemonConfig } from '../../daemon/config.js';
import { nodeArgv } from '../../daemon/node-options.js';
import { MembersApiClient } from '../../control-plane/raft/host/members-api.js';
import type { Node } from '../../common/resources/types.js';

const run = promisify(execFile);
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const API_PORT = 7420;
const METRICS_PORT = 7421;

/**
 * Settings the cluster gives each node itself, because each node needs its own value. join and
 * tokenFile come from the cluster's own join sequence.
 */
export const NETNS_DERIVED_SETTINGS = [
  'dataRoot',
  'nodeName',
  'listen',
  'metricsListen',
  'advertiseAddress',
  'apiSocket',
  'subnet',
  'cgroupParent',
  'join',
  'tokenFile',
] as const satisfies ReadonlyArray<keyof DaemonConfig>;

export type NetnsDerivedSetting = (typeof NETNS_DERIVED_SETTINGS)[number];

/** tsd settings every node of the cluster runs with alike. */
export type SharedNodeSettings = Partial<Omit<DaemonConfig, NetnsDerivedSetting>>;

export interface NetnsClusterOptions {
  /** Unique short prefix (≤ 8 characters, a-z0-9) for namespaces, links and cgroups. */
  prefix: string;
  nodes: number;
  /** How many of the nodes (the first ones) are managers; default 1. The others are workers. */
  managers?: number;
  /** Data roots go under it, one folder per node. */
  baseDir: string;
  /** Third octet of the underlay 172.31.X.0/24; pick distinct ones for concurrent clusters. */
  underlayOctet: number;
  /** Put the underlay bridge in the host's namespace (reachable from the host) or in a switch namespace of its own (tests). */
  hostBridge: boolean;
  /** Cgroup under which the cluster's cgroups go (<it>/<prefix>/node-N); default: <prefix>/node-N at the root. */
  cgroupParent?: string;
  /** tsd settings for every node (defaults: tsd's own). */
  daemon?: SharedNodeSettings;
  /** Shorthand for daemon.heartbeatMs. */
  heartbeatMs?: number;
  /** Shorthand for daemon.nodeDownAfterMs. */
  nodeDownAfterMs?: number;
  readyTimeoutMs?: number;
  /** Shorthand for daemon.insecureRegistries: registries the nodes reach over plain HTTP (e.g. one the tests run on the underlay). */
  insecureRegistries?: string[];
}

export interface ClusterNodeState {
  name: string;
  netns: string;
  underlayAddress: string;
  /** Name of the node's veth on the underlay bridge side. */
  uplink: string;
  dataRoot: string;
  cgroupParent: string;
  subnet: string;
  pid: number;
  /** The tsd's start time (/proc/PID/stat field 22) when pid was recorded; absent in older states. */
  startTime?: number;
  role: 'manager' | 'worker';
  /** Managers only: the node's API on a unix socket (node-1's is the cluster's apiSocket). */
  apiSocket?: string;
  /** The node's tsd options (without the join token), as nodeTsdArgv made them; cleanup reuses them. */
  tsdOptions?: string[];
}

export interface NetnsClusterState {
  prefix: string;
  baseDir: string;
  hostBridge: boolean;
  /** The underlay bridge, and the namespace that holds it ('' for the host's). */
  bridge: string;
  switchNetns: string;
  /** The manager's API on a unix socket, reachable from any namespace. */
  apiSocket: string;
  managerAddress: string;
  /** The topmost cgroup this cluster created (removed with everything under it); absent in older states: the prefix. */
  cgroupRoot?: string;
  nodes: ClusterNodeState[];
}

function repoDist(): string {
  // this file is dist/cli/local-cluster/netns-cluster.js (or cli/local-cluster/netns-cluster.ts under tsx)
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

function tsdMain(): string {
  const root = repoDist();
  return root.endsWith('dist') ? join(root, 'daemon', 'main.js') : join(root, 'dist', 'daemon', 'main.js');
}

async function sh(command: string, args: string[]): Promise<string> {
  const { stdout } = await run(command, args, { env: { ...process.env, PATH: SYSTEM_PATH } });
  return stdout;
}

function inSwitch(state: Pick<NetnsClusterState, 'switchNetns'>, args: string[]): string[] {
  return state.switchNetns ? ['-n', state.switchNetns, ...args] : args;
}

/** Throws on options the cluster cannot be built with (before anything is made). */
export function validateNetnsClusterOptions(options: NetnsClusterOptions): void {
  if (!/^[a-z0-9]{1,8}$/.test(options.prefix)) throw new Error(`cluster prefix must be 1-8 characters a-z0-9, got "${options.prefix}"`);
  if (!Number.isInteger(options.nodes) || options.nodes < 1 || options.nodes > 50) throw new Error(`--nodes must be from 1 to 50, got ${options.nodes}`);
  const managers = options.managers ?? 1;
  if (!Number.isInteger(managers) || managers < 1 || managers > options.nodes) {
    throw new Error(`--managers must be from 1 to the number of nodes (${options.nodes}), got ${managers}`);
  }
  if (!Number.isInteger(options.underlayOctet) || options.underlayOctet < 0 || options.underlayOctet > 255) throw new Error('underlay octet must be 0-255');
  for (const key of ['heartbeatMs', 'nodeDownAfterMs', 'insecureRegistries'] as const) {
    if (options[key] !== undefined && options.daemon?.[key] !== undefined) throw new Error(`give ${key} either as a cluster option or in daemon, not both`);
  }
  const store = sharedSettings(options).store ?? 'raft';
  if (managers > 1 && store !== 'raft') {
    throw new Error(
      `--store ${store} cannot have ${managers} managers: extra managers join through the replicated raft store (use --store raft, or --managers 1)`,
    );
  }
  // Every node's settings are checked before anything is made.
  for (let i = 1; i <= options.nodes; i++) validateConfig(nodeDaemonConfig(nodeLayout(options, i), options));
}

function sharedSettings(options: NetnsClusterOptions): SharedNodeSettings {
  return {
    ...options.daemon,
    ...(options.heartbeatMs !== undefined ? { heartbeatMs: options.heartbeatMs } : {}),
    ...(options.nodeDownAfterMs !== undefined ? { nodeDownAfterMs: options.nodeDownAfterMs } : {}),
    ...(options.insecureRegistries !== undefined ? { insecureRegistries: options.insecureRegistries } : {}),
  };
}

/** The cgroup under which this cluster's node cgroups go. */
function clusterCgroup(options: Pick<NetnsClusterOptions, 'prefix' | 'cgroupParent'>): string {
  return options.cgroupParent ? `${options.cgroupParent.replace(/\/+$/, '')}/${options.prefix}` : options.prefix;
}

/** Node i's names, addresses and directories (pure: nothing is created). */
export function nodeLayout(options: NetnsClusterOptions, i: number): ClusterNodeState {
  const p = options.prefix;
  const role = i <= (options.managers ?? 1) ? 'manager' : 'worker';
  return {
    name: `node-${i}`,
    netns: `${p}-n${i}`,
    underlayAddress: `172.31.${options.underlayOctet}.${i}`,
    uplink: `${p}v${i}`,
    dataRoot: join(options.baseDir, `node-${i}`),
    cgroupParent: `${clusterCgroup(options)}/node-${i}`,
    subnet: `10.${200 + (options.underlayOctet % 50)}.${i}.0/24`,
    pid: 0,
    role,
    ...(role === 'manager' ? { apiSocket: `unix:${join(options.baseDir, `node-${i}`, 'api.sock')}` } : {}),
  };
}

/** The configuration a node's tsd runs with: the cluster's shared settings plus what is the node's own. */
export function nodeDaemonConfig(node: ClusterNodeState, options: NetnsClusterOptions): DaemonConfig {
  const { join: _join, tokenFile: _tokenFile, apiSocket: _apiSocket, ...base } = { ...defaultConfig(), ...sharedSettings(options) } as DaemonConfig;
  return {
    ...base,
    dataRoot: node.dataRoot,
    nodeName: node.name,
    cgroupParent: node.cgroupParent,
    subnet: node.subnet,
    listen: `${node.underlayAddress}:${API_PORT}`,
    metricsListen: `${node.underlayAddress}:${METRICS_PORT}`,
    advertiseAddress: node.underlayAddress,
    ...(node.apiSocket !== undefined ? { apiSocket: node.apiSocket } : {}),
  };
}

/** tsd's options for this node (without `init`/`join`, the token and the manager address). */
export function nodeTsdArgv(node: ClusterNodeState, options: NetnsClusterOptions): string[] {
  return nodeArgv(nodeDaemonConfig(node, options));
}

/** Starts the node's tsd and records its PID and start time on `node`. */
async function startTsd(node: ClusterNodeState, args: string[]): Promise<void> {
  recordTsd(node, await spawnTsd(node, args, join(node.dataRoot, 'tsd.log')));
}

/** Records a tsd just started for `node`: its PID and start time, which nodeRunning and teardown check. */
export function recordTsd(node: ClusterNodeState, pid: number): void {
  node.pid = pid;
  // Read at once: nsenter, unshare and sh exec into tsd, so the PID and its start time stay tsd's.
  const startTime = processStartTime(pid);
  if (startTime === undefined) delete node.startTime;
  else node.startTime = startTime;
}

/** Whether the node's recorded tsd still runs (not a zombie, not a reused PID). */
export function nodeRunning(node: Pick<ClusterNodeState, 'pid' | 'startTime'>): boolean {
  return node.pid > 0 && processAlive(node.pid, node.startTime);
}

async function spawnTsd(node: ClusterNodeState, args: string[], logPath: string): Promise<number> {
  // tsd's output is root's alone (0600), also in a log an older version made 0644.
  const logFile = await open(logPath, 'a', 0o600);
  await logFile.chmod(0o600);
  // nsenter keeps the host's /sys (so /sys/fs/cgroup stays visible, which `ip netns exec` hides);
  // unshare gives the node its own hostname.
  const child = spawn(
    'nsenter',
    [
      `--net=/run/netns/${node.netns}`,
      'unshare',
      '--uts',
      '--',
      'sh',
      '-c',
      'hostname "$0" && exec "$@"',
      node.name,
      process.execPath,
      '--enable-source-maps',
      tsdMain(),
      ...args,
    ],
    { detached: true, stdio: ['ignore', logFile.fd, logFile.fd], env: { ...process.env, PATH: SYSTEM_PATH } },
  );
  await logFile.close();
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start tsd for ${node.name}`);
  return child.pid;
}

/**
 * `join` arguments for a node's first start. The token goes through a 0600 file in the node's data
 * root, never argv (ps shows argv to every user); removeTokenFile deletes it once the node is in.
 */
async function joinArgs(node: ClusterNodeState, options: NetnsClusterOptions, token: string, managerAddress: string): Promise<string[]> {
  const path = tokenFilePath(node);
  await writeFile(path, `${token}\n`, { mode: 0o600 });
  return ['join', ...optionsOf(node, options), '--token-file', path, managerAddress];
}

function tokenFilePath(node: ClusterNodeState): string {
  return join(node.dataRoot, 'join-token');
}

async function removeTokenFile(node: ClusterNodeState): Promise<void> {
  await rm(tokenFilePath(node), { force: true });
}

/** Node options recorded in the state, or (a state written before they were) rebuilt from the options. */
function optionsOf(node: ClusterNodeState, options: NetnsClusterOptions): string[] {
  return node.tsdOptions ?? nodeTsdArgv(node, options);
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, explain: () => Promise<string>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: string | undefined;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      // Refused while tsd starts: asked again until the deadline, and the last answer goes in the error.
      lastError = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) {
      const said = lastError === undefined ? '' : ` (last error: ${lastError})`;
      throw new Error(`timed out waiting for ${what}${said}\n${await explain()}`);
    }
    await sleep(200);
  }
}

/** The last lines of a node's tsd.log, for an error; says so when there is none or it cannot be read. */
async function logTail(node: ClusterNodeState, lines = 15): Promise<string> {
  const path = join(node.dataRoot, 'tsd.log');
  try {
    return `${node.name}: ${(await readFile(path, 'utf8')).split('\n').slice(-lines).join('\n')}`;
  } catch (err) {
    return isAbsent(err) ? `${node.name}: no ${path} (tsd never started)` : `${node.name}: could not read ${path}: ${(err as Error).message}`;
  }
}

/** Builds the cluster; on failure removes whatever it made before throwing. */
export async function createNetnsCluster(options: NetnsClusterOptions): Promise<NetnsClusterState> {
  validateNetnsClusterOptions(options);
  const p = options.prefix;
  const state: NetnsClusterState = {
    prefix: p,
    baseDir: options.baseDir,
    hostBridge: options.hostBridge,
    bridge: `${p}ul`,
    switchNetns: options.hostBridge ? '' : `${p}-sw`,
    apiSocket: `unix:${join(options.baseDir, 'node-1', 'api.sock')}`,
    managerAddress: `172.31.${options.underlayOctet}.1:${API_PORT}`,
    nodes: [],
  };
  // Until destroyed: a test worker ended early (ava's timeout sends SIGTERM, and no after.always
  // hook runs then) still removes it (test/helpers/worker-teardown.ts).
  remember(state, () => destroyNetnsCluster(state));
  state.cgroupRoot = await topmostMissingCgroup(clusterCgroup(options));
  try {
    await mkdir(options.baseDir, { recursive: true });
    if (state.switchNetns) {
      await sh('ip', ['netns', 'add', state.switchNetns]);
      await sh('ip', ['-n', state.switchNetns, 'link', 'set', 'lo', 'up']);
    }
    await sh('ip', inSwitch(state, ['link', 'add', state.bridge, 'type', 'bridge']));
    await sh('ip', inSwitch(state, ['addr', 'add', `172.31.${options.underlayOctet}.254/24`, 'dev', state.bridge]));
    await sh('ip', inSwitch(state, ['link', 'set', state.bridge, 'up']));
    for (let i = 1; i <= options.nodes; i++) state.nodes.push(await makeNodeNamespace(state, options, i));
    const manager = state.nodes[0]!;
    await startTsd(manager, ['init', ...optionsOf(manager, options)]);
    const timeout = options.readyTimeoutMs ?? 60_000;
    const client = new ApiClient(state.apiSocket, 5000);
    const members = new MembersApiClient(state.apiSocket, LOCAL_INSECURE, 5000);
    try {
      const logOf = (n: ClusterNodeState) => () => logTail(n);
      await waitFor(
        'the manager to be ready',
        timeout,
        async () => (nodeRunning(manager) ? (await client.list({ kind: 'Node', allStacks: true })).objectsJson.length > 0 || undefined : undefined),
        logOf(manager),
      );
      // Managers join one at a time: each must be a voter before the next membership change.
      const managerToken = (await client.joinToken('manager', false)).token;
      for (const node of state.nodes.slice(1).filter((n) => n.role === 'manager')) {
        await startTsd(node, await joinArgs(node, options, managerToken, state.managerAddress));
        await waitFor(
          `${node.name} to be a voting manager`,
          timeout,
          async () => {
            const rows = await members.members();
            return rows.some((m) => m.id === node.name && (m.role === 'follower' || m.role === 'leader')) ? true : undefined;
          },
          logOf(node),
        );
      }
      const { token } = await client.joinToken('worker', false);
      for (const node of state.nodes.filter((n) => n.role === 'worker')) {
        await startTsd(node, await joinArgs(node, options, token, state.managerAddress));
      }
      await waitFor(
        `all ${options.nodes} nodes to be ready`,
        timeout,
        async () => {
          const nodes = (await client.list({ kind: 'Node', allStacks: true })).objectsJson.map((j) => JSON.parse(j) as Node);
          const ready = nodes.filter((n) => n.status.state === 'ready').length;
          return ready === options.nodes ? true : undefined;
        },
        async () => (await Promise.all(state.nodes.map((n) => logOf(n)()))).join('\n'),
      );
    } finally {
      client.close();
      members.close();
      // Joined (or failed): the tokens are of no further use and do not stay on disk.
      await Promise.all(state.nodes.map(removeTokenFile));
    }
    return state;
  } catch (err) {
    // The build's own error is what the caller gets; what the clean-up could not remove is reported
    // beside it rather than hidden, since it is left on the host.
    await destroyNetnsCluster(state).catch((cleanupErr: unknown) =>
      warn(`clean-up after a failed start failed: ${cleanupErr instanceof Error ? cleanupErr.message : String(cleanupErr)}`),
    );
    throw err;
  }
}

async function makeNodeNamespace(state: NetnsClusterState, options: NetnsClusterOptions, i: number): Promise<ClusterNodeState> {
  const layout = nodeLayout(options, i);
  const node: ClusterNodeState = { ...layout, tsdOptions: nodeTsdArgv(layout, options) };
  await sh('ip', ['netns', 'add', node.netns]);
  await sh('ip', ['-n', node.netns, 'link', 'set', 'lo', 'up']);
  await sh('ip', inSwitch(state, ['link', 'add', node.uplink, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', node.netns]));
  await sh('ip', inSwitch(state, ['link', 'set', node.uplink, 'master', state.bridge, 'up']));
  await sh('ip', ['-n', node.netns, 'addr', 'add', `${node.underlayAddress}/24`, 'dev', 'eth0']);
  await sh('ip', ['-n', node.netns, 'link', 'set', 'eth0', 'up']);
  await mkdir(node.dataRoot, { recursive: true });
  return node;
}

/** Adds one more worker node to a running cluster and waits until it is ready. */
export async function addNetnsNode(state: NetnsClusterState, options: NetnsClusterOptions): Promise<ClusterNodeState> {
  const node = await makeNodeNamespace(state, options, state.nodes.length + 1);
  state.nodes.push(node);
  const client = new ApiClient(state.apiSocket, 5000);
  try {
    const { token } = await client.joinToken('worker', false);
    await startTsd(node, await joinArgs(node, options, token, state.managerAddress));
    await waitFor(
      `${node.name} to be ready`,
      options.readyTimeoutMs ?? 60_000,
      async () => {
        const nodes = (await client.list({ kind: 'Node', allStacks: true })).objectsJson.map((j) => JSON.parse(j) as Node);
        return nodes.some((n) => n.metadata.name === node.name && n.status.state === 'ready') ? true : undefined;
      },
      () => logTail(node, Number.POSITIVE_INFINITY),
    );
  } finally {
    client.close();
    await removeTokenFile(node);
  }
  return node;
}

/** Starts a worker node's tsd again (after it died or was killed), with the same settings. */
export async function restartNetnsNode(state: NetnsClusterState, options: NetnsClusterOptions, node: ClusterNodeState): Promise<void> {
  if (node.role !== 'worker') throw new Error(`${node.name} is a manager; restarting managers needs the replicated store`);
  if (nodeRunning(node)) throw new Error(`${node.name}'s tsd (pid ${node.pid}) is still running`);
  // The node kept its certificate: it needs no token to come back.
  await startTsd(node, ['join', ...optionsOf(node, options), state.managerAddress]);
}

/** Stops every node's tsd (workers first), removes its containers, namespaces, links, cgroups and data. */
const warn = (line: string): void => void process.stderr.write(`netns cluster: ${line}\n`);

/** `log` hears what could not be removed (left on the host); by default it goes to standard error. */
export async function destroyNetnsCluster(state: NetnsClusterState, log: (line: string) => void = warn): Promise<void> {
  forget(state);
  const byRole = [...state.nodes].sort((a, b) => (a.role === b.role ? 0 : a.role === 'worker' ? -1 : 1));
  for (const node of byRole) {
    if (nodeRunning(node)) process.kill(node.pid, 'SIGTERM');
  }
  const deadline = Date.now() + 60_000;
  for (const node of byRole) {
    while (nodeRunning(node) && Date.now() < deadline) await sleep(100);
    if (nodeRunning(node)) {
      log(`tsd of ${node.name} (pid ${node.pid}) did not stop; killing it`);
      process.kill(node.pid, 'SIGKILL');
    }
  }
  for (const node of state.nodes) {
    // The node's own tsd cleans up inside its namespace; this catches what a killed one left.
    // A state written before tsdOptions existed had these settings hard-coded.
    const cleanupOptions = node.tsdOptions ?? [
      '--data-root',
      node.dataRoot,
      '--cgroup-parent',
      node.cgroupParent,
      '--bridge',
      'tessera0',
      '--subnet',
      node.subnet,
      '--nft-table',
      'tessera',
    ];
    await sh('nsenter', [`--net=/run/netns/${node.netns}`, process.execPath, tsdMain(), 'cleanup', ...cleanupOptions]).catch((err: Error) =>
      log(`cleanup of ${node.name}: ${err.message}`),
    );
    await deleteNetns(node.netns, log);
    await removeCgroups(node.cgroupParent, log);
  }
  await removeCgroups(state.cgroupRoot ?? state.prefix, log);
  if (state.switchNetns) await deleteNetns(state.switchNetns, log);
  else await deleteLink(state.bridge, log);
  await rm(state.baseDir, { recursive: true, force: true });
}

// Destroy runs again over a half-built or half-destroyed cluster, so what is already gone is fine;
// anything else it cannot remove is left on the host, and is logged.

async function deleteNetns(name: string, log: (line: string) => void): Promise<void> {
  if ((await unlessAbsent(stat(`/run/netns/${name}`), undefined)) === undefined) return;
  await sh('ip', ['netns', 'delete', name]).catch((err: Error) => log(`could not delete network namespace ${name}: ${err.message}`));
}

async function deleteLink(name: string, log: (line: string) => void): Promise<void> {
  if ((await unlessAbsent(stat(`/sys/class/net/${name}`), undefined)) === undefined) return;
  await sh('ip', ['link', 'delete', name]).catch((err: Error) => log(`could not delete link ${name}: ${err.message}`));
}

/**
 * The first component of `path` that exists in no cgroup hierarchy yet: everything from there
 * down will be the cluster's, so destroy may remove it whole. If all of it exists already (left
 * by an earlier cluster of this prefix), the path itself.
 */
async function topmostMissingCgroup(path: string): Promise<string> {
  const roots = await cgroupHierarchies();
  const parts = path.split('/').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const candidate = parts.slice(0, i).join('/');
    // Only a missing directory is "not there"; an error reading it would make destroy claim it.
    const present = await Promise.all(roots.map(async (root) => (await unlessAbsent(stat(join(root, candidate)), undefined)) !== undefined));
    if (!present.includes(true)) return candidate;
  }
  return parts.join('/');
}

/** Removes the cgroup `parent` and everything under it in every hierarchy (deepest first). */
async function removeCgroups(parent: string, log: (line: string) => void): Promise<void> {
  for (const root of await cgroupHierarchies()) {
    const top = join(root, parent);
    if ((await unlessAbsent(stat(top), undefined)) === undefined) continue; // not in this hierarchy
    const out = await sh('find', [top, '-depth', '-type', 'd']).catch((err: Error) => {
      log(`could not list cgroups under ${top}: ${err.message}`);
      return '';
    });
    for (const dir of out.split('\n').filter(Boolean)) {
      // EBUSY: a process is still in it (its tsd was killed before cleaning up); the cgroup stays.
      await unlessAbsent(rmdir(dir), undefined).catch((err: Error) => log(`could not remove cgroup ${dir}: ${err.message}`));
    }
  }
}

// --- one node at a time (tsctl cluster node stop|kill|start) -------------------------------------

const NODE_STOP_TIMEOUT_MS = 60_000;

function nodeNamed(state: NetnsClusterState, name: string): ClusterNodeState {
  const node = state.nodes.find((n) => n.name === name);
  if (!node) throw new Error(`this cluster has no node "${name}"; its nodes are ${state.nodes.map((n) => n.name).join(', ')}`);
  return node;
}

/**
 * Stops a node's tsd: `stop` sends SIGTERM and waits for it to exit (it cleans up after itself),
 * `kill` sends SIGKILL (as a crash would: its containers and cgroups stay until it starts again or
 * the cluster goes down). Returns what happened.
 */
export async function stopNetnsNodeTsd(state: NetnsClusterState, name: string, how: 'stop' | 'kill'): Promise<string> {
  const node = nodeNamed(state, name);
  if (!nodeRunning(node)) return `${node.name}'s tsd is not running`;
  process.kill(node.pid, how === 'kill' ? 'SIGKILL' : 'SIGTERM');
  const deadline = Date.now() + NODE_STOP_TIMEOUT_MS;
  while (nodeRunning(node) && Date.now() < deadline) await sleep(100);
  if (nodeRunning(node))
    throw new Error(`${node.name}'s tsd (pid ${node.pid}) did not stop within ${NODE_STOP_TIMEOUT_MS / 1000} s; tsctl cluster node kill ${node.name} ends it`);
  return how === 'kill' ? `${node.name}'s tsd (pid ${node.pid}) killed` : `${node.name}'s tsd (pid ${node.pid}) stopped`;
}

/**
 * Starts a stopped node's tsd again with its data, certificate and settings: a manager resumes its
 * place among the managers (`init` on an existing data root), a worker reconnects. Resolves once
 * its API answers (a manager) or its process runs (a worker: it reports ready on its own).
 */
export async function startNetnsNodeTsd(state: NetnsClusterState, name: string, readyTimeoutMs = 60_000): Promise<string> {
  const node = nodeNamed(state, name);
  if (nodeRunning(node)) throw new Error(`${node.name}'s tsd (pid ${node.pid}) is already running`);
  if (!node.tsdOptions)
    throw new Error(`the recorded state of ${node.name} has no tsd options (made by an older tsctl): recreate the cluster to restart nodes`);
  if (node.role === 'worker') {
    await startTsd(node, ['join', ...node.tsdOptions, state.managerAddress]);
    return `${node.name}'s tsd started (pid ${node.pid})`;
  }
  await startTsd(node, ['init', ...node.tsdOptions]);
  const client = new ApiClient(node.apiSocket!, 5000);
  try {
    // The manager answers once it has caught up with the others (or waits for a majority to be up).
    const outcome = await waitFor(
      `${node.name}'s API`,
      readyTimeoutMs,
      async () => {
        if (!nodeRunning(node)) return 'exited';
        await client.list({ kind: 'Node', allStacks: true });
        return 'answers';
      },
      () => logTail(node),
    );
    if (outcome === 'exited') throw new Error(`${node.name}'s tsd exited while starting\n${await logTail(node)}`);
  } finally {
    client.close();
  }
  return `${node.name}'s tsd started (pid ${node.pid}); its API answers at ${node.apiSocket}`;
}
