// A local multi-node cluster on one Linux machine: every node is a network namespace with its own
// underlay address on a bridge made for the cluster, its own hostname (UTS namespace), data root
// and cgroup parent, running its own tsd. `tsctl cluster up --nodes N` and the test suite both use
// this code. Everything it makes is named with the cluster's prefix and recorded in the returned
// state, so `destroyNetnsCluster` removes exactly that, also after a crash.
import { execFile, spawn } from 'node:child_process';
import { copyFile, mkdir, open, readFile, rm, rmdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

import { processAlive } from '../agent/runtime/process-alive.js';
import { ApiClient } from '../cli/client.js';
import { LOCAL_INSECURE } from '../control-plane/ca/credentials.js';
import { MembersApiClient } from '../control-plane/raft/host/members-api.js';
import type { Node } from '../control-plane/resources/types.js';

const run = promisify(execFile);
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const API_PORT = 7420;
const METRICS_PORT = 7421;

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
  heartbeatMs?: number;
  nodeDownAfterMs?: number;
  readyTimeoutMs?: number;
  /** Registries the nodes reach over plain HTTP (e.g. one the tests run on the underlay). */
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
  role: 'manager' | 'worker';
  /** Managers only: the node's API on a unix socket (node-1's is the cluster's apiSocket). */
  apiSocket?: string;
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
  nodes: ClusterNodeState[];
}

function repoDist(): string {
  // this file is dist/deploy/netns-cluster.js (or deploy/netns-cluster.ts under tsx)
  return join(dirname(fileURLToPath(import.meta.url)), '..');
}

function tsdMain(): string {
  const root = repoDist();
  return root.endsWith('dist') ? join(root, 'control-plane', 'daemon', 'main.js') : join(root, 'dist', 'control-plane', 'daemon', 'main.js');
}

async function sh(command: string, args: string[]): Promise<string> {
  const { stdout } = await run(command, args, { env: { ...process.env, PATH: SYSTEM_PATH } });
  return stdout;
}

function inSwitch(state: Pick<NetnsClusterState, 'switchNetns'>, args: string[]): string[] {
  return state.switchNetns ? ['-n', state.switchNetns, ...args] : args;
}

function validate(options: NetnsClusterOptions): void {
  if (!/^[a-z0-9]{1,8}$/.test(options.prefix)) throw new Error(`cluster prefix must be 1-8 characters a-z0-9, got "${options.prefix}"`);
  if (!Number.isInteger(options.nodes) || options.nodes < 1 || options.nodes > 50) throw new Error(`--nodes must be from 1 to 50, got ${options.nodes}`);
  const managers = options.managers ?? 1;
  if (!Number.isInteger(managers) || managers < 1 || managers > options.nodes) {
    throw new Error(`--managers must be from 1 to the number of nodes (${options.nodes}), got ${managers}`);
  }
  if (!Number.isInteger(options.underlayOctet) || options.underlayOctet < 0 || options.underlayOctet > 255) throw new Error('underlay octet must be 0-255');
}

async function spawnTsd(node: ClusterNodeState, args: string[], logPath: string): Promise<number> {
  const logFile = await open(logPath, 'a');
  // nsenter keeps the host's /sys (so /sys/fs/cgroup stays visible, which `ip netns exec` hides);
  // unshare gives the node its own hostname.
  const child = spawn(
    'nsenter',
    [`--net=/run/netns/${node.netns}`, 'unshare', '--uts', '--', 'sh', '-c', 'hostname "$0" && exec "$@"', node.name,
      process.execPath, '--enable-source-maps', tsdMain(), ...args],
    { detached: true, stdio: ['ignore', logFile.fd, logFile.fd], env: { ...process.env, PATH: SYSTEM_PATH } },
  );
  await logFile.close();
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start tsd for ${node.name}`);
  return child.pid;
}

function nodeArgs(node: ClusterNodeState, options: NetnsClusterOptions): string[] {
  return [
    '--data-root', node.dataRoot, '--node-name', node.name, '--cgroup-parent', node.cgroupParent,
    '--bridge', 'tessera0', '--subnet', node.subnet, '--nft-table', 'tessera',
    '--listen', `${node.underlayAddress}:${API_PORT}`, '--metrics-listen', `${node.underlayAddress}:${METRICS_PORT}`,
    '--advertise-address', node.underlayAddress, '--insecure-transport',
    '--heartbeat-ms', String(options.heartbeatMs ?? 1000), '--node-down-after-ms', String(options.nodeDownAfterMs ?? 5000),
    ...(options.insecureRegistries ?? []).flatMap((r) => ['--insecure-registry', r]),
  ];
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, explain: () => Promise<string>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${await explain()}`);
    await sleep(200);
  }
}

/** Builds the cluster; on failure removes whatever it made before throwing. */
export async function createNetnsCluster(options: NetnsClusterOptions): Promise<NetnsClusterState> {
  validate(options);
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
    manager.pid = await spawnTsd(manager, ['init', ...nodeArgs(manager, options), '--api-socket', manager.apiSocket as string], join(manager.dataRoot, 'tsd.log'));
    const timeout = options.readyTimeoutMs ?? 60_000;
    const client = new ApiClient(state.apiSocket, 5000);
    const members = new MembersApiClient(state.apiSocket, LOCAL_INSECURE, 5000);
    try {
      const logOf = (n: ClusterNodeState) => () => readFile(join(n.dataRoot, 'tsd.log'), 'utf8').then((t) => `${n.name}: ${t.split('\n').slice(-15).join('\n')}`, () => '');
      await waitFor('the manager to be ready', timeout, async () => (processAlive(manager.pid) ? (await client.list({ kind: 'Node', allStacks: true })).objectsJson.length > 0 || undefined : undefined), logOf(manager));
      // Managers join one at a time: each must be a voter before the next membership change.
      const managerToken = (await client.joinToken('manager', false)).token;
      for (const node of state.nodes.slice(1).filter((n) => n.role === 'manager')) {
        node.pid = await spawnTsd(node, ['join', ...nodeArgs(node, options), '--api-socket', node.apiSocket as string, '--token', managerToken, state.managerAddress], join(node.dataRoot, 'tsd.log'));
        await waitFor(`${node.name} to be a voting manager`, timeout, async () => {
          const rows = await members.members();
          return rows.some((m) => m.id === node.name && (m.role === 'follower' || m.role === 'leader')) ? true : undefined;
        }, logOf(node));
      }
      const { token } = await client.joinToken('worker', false);
      for (const node of state.nodes.filter((n) => n.role === 'worker')) {
        node.pid = await spawnTsd(node, ['join', ...nodeArgs(node, options), '--token', token, state.managerAddress], join(node.dataRoot, 'tsd.log'));
      }
      await waitFor(`all ${options.nodes} nodes to be ready`, timeout, async () => {
        const nodes = (await client.list({ kind: 'Node', allStacks: true })).objectsJson.map((j) => JSON.parse(j) as Node);
        const ready = nodes.filter((n) => n.status.state === 'ready').length;
        return ready === options.nodes ? true : undefined;
      }, async () => (await Promise.all(state.nodes.map((n) => logOf(n)()))).join('\n'));
    } finally {
      client.close();
      members.close();
    }
    return state;
  } catch (err) {
    await destroyNetnsCluster(state).catch(() => {});
    throw err;
  }
}

async function makeNodeNamespace(state: NetnsClusterState, options: NetnsClusterOptions, i: number): Promise<ClusterNodeState> {
  const p = state.prefix;
  const role = i <= (options.managers ?? 1) ? 'manager' : 'worker';
  const node: ClusterNodeState = {
    name: `node-${i}`,
    netns: `${p}-n${i}`,
    underlayAddress: `172.31.${options.underlayOctet}.${i}`,
    uplink: `${p}v${i}`,
    dataRoot: join(options.baseDir, `node-${i}`),
    cgroupParent: `${p}/node-${i}`,
    subnet: `10.${200 + (options.underlayOctet % 50)}.${i}.0/24`,
    pid: 0,
    role,
    ...(role === 'manager' ? { apiSocket: `unix:${join(options.baseDir, `node-${i}`, 'api.sock')}` } : {}),
  };
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
    node.pid = await spawnTsd(node, ['join', ...nodeArgs(node, options), '--token', token, state.managerAddress], join(node.dataRoot, 'tsd.log'));
    await waitFor(`${node.name} to be ready`, options.readyTimeoutMs ?? 60_000, async () => {
      const nodes = (await client.list({ kind: 'Node', allStacks: true })).objectsJson.map((j) => JSON.parse(j) as Node);
      return nodes.some((n) => n.metadata.name === node.name && n.status.state === 'ready') ? true : undefined;
    }, () => readFile(join(node.dataRoot, 'tsd.log'), 'utf8').catch(() => ''));
  } finally {
    client.close();
  }
  return node;
}

/** Starts a worker node's tsd again (after it died or was killed), with the same settings. */
export async function restartNetnsNode(state: NetnsClusterState, options: NetnsClusterOptions, node: ClusterNodeState): Promise<void> {
  if (node.role !== 'worker') throw new Error(`${node.name} is a manager; restarting managers needs the replicated store`);
  if (processAlive(node.pid)) throw new Error(`${node.name}'s tsd (pid ${node.pid}) is still running`);
  const client = new ApiClient(state.apiSocket, 5000);
  try {
    const { token } = await client.joinToken('worker', false);
    node.pid = await spawnTsd(node, ['join', ...nodeArgs(node, options), '--token', token, state.managerAddress], join(node.dataRoot, 'tsd.log'));
  } finally {
    client.close();
  }
}

/** Stops every node's tsd (workers first), removes its containers, namespaces, links, cgroups and data. */
export async function destroyNetnsCluster(state: NetnsClusterState, log: (line: string) => void = () => {}): Promise<void> {
  const byRole = [...state.nodes].sort((a, b) => (a.role === b.role ? 0 : a.role === 'worker' ? -1 : 1));
  for (const node of byRole) {
    if (node.pid > 0 && processAlive(node.pid)) process.kill(node.pid, 'SIGTERM');
  }
  const deadline = Date.now() + 60_000;
  for (const node of byRole) {
    while (node.pid > 0 && processAlive(node.pid) && Date.now() < deadline) await sleep(100);
    if (node.pid > 0 && processAlive(node.pid)) {
      log(`tsd of ${node.name} (pid ${node.pid}) did not stop; killing it`);
      process.kill(node.pid, 'SIGKILL');
    }
  }
  for (const node of state.nodes) {
    // The node's own tsd cleans up inside its namespace; this catches what a killed one left.
    await sh('nsenter', [`--net=/run/netns/${node.netns}`, process.execPath, tsdMain(), 'cleanup', '--data-root', node.dataRoot,
      '--cgroup-parent', node.cgroupParent, '--bridge', 'tessera0', '--subnet', node.subnet, '--nft-table', 'tessera']).catch((err: Error) => log(`cleanup of ${node.name}: ${err.message}`));
    await sh('ip', ['netns', 'delete', node.netns]).catch(() => {});
    await removeCgroups(node.cgroupParent);
  }
  await removeCgroups(state.prefix);
  if (state.switchNetns) await sh('ip', ['netns', 'delete', state.switchNetns]).catch(() => {});
  else await sh('ip', ['link', 'delete', state.bridge]).catch(() => {});
  await rm(state.baseDir, { recursive: true, force: true });
}

async function removeCgroups(parent: string): Promise<void> {
  const out = await sh('sh', ['-c', `for c in /sys/fs/cgroup/*/; do [ -d "$c${parent}" ] && find "$c${parent}" -depth -type d; done; true`]).catch(() => '');
  for (const dir of out.split('\n').filter(Boolean)) await rmdir(dir).catch(() => {});
}

/** Copies every node's tsd.log into `dir` (for a failed test's post-mortem); missing logs are skipped. */
export async function saveClusterLogs(state: NetnsClusterState, dir: string): Promise<void> {
  await copyLogs(dir, state.nodes.map((node) => ({ path: join(node.dataRoot, 'tsd.log'), name: `${node.name}.log` })));
}

/** Copies log files into `dir` under the given names; missing ones are skipped. */
export async function copyLogs(dir: string, logs: Array<{ path: string; name: string }>): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const log of logs) await copyFile(log.path, join(dir, log.name)).catch(() => {});
}
