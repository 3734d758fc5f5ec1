// `tsctl cluster up|down` for a single-node cluster in this machine's network namespace.
import { spawn } from 'node:child_process';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { cleanupNode } from '../control-plane/daemon/cleanup.js';
import { dataPaths, validateConfig, type DaemonConfig } from '../control-plane/daemon/config.js';
import type { Node } from '../control-plane/resources/types.js';
import { createNetnsCluster, destroyNetnsCluster } from '../deploy/netns-cluster.js';
import { connect } from './client.js';
import { readContext, removeContext, writeContext } from './context.js';
import { processAlive } from '../agent/runtime/process-alive.js';

const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 60_000;

function tsdMainPath(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', 'control-plane', 'daemon', 'main.js');
}

function daemonArgs(config: DaemonConfig): string[] {
  const args = [
    '--data-root', config.dataRoot, '--listen', config.listen, '--metrics-listen', config.metricsListen,
    '--node-name', config.nodeName, '--bridge', config.bridge, '--subnet', config.subnet,
    '--nft-table', config.nftTable, '--cgroup-parent', config.cgroupParent,
    '--heartbeat-ms', String(config.heartbeatMs), '--node-down-after-ms', String(config.nodeDownAfterMs),
  ];
  for (const registry of config.insecureRegistries) args.push('--insecure-registry', registry);
  return args;
}

/** Resolves when the API answers and this node reports ready; throws with tsd's last words otherwise. */
async function waitReady(config: DaemonConfig, pid: number): Promise<void> {
  const client = connect(config.listen);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  try {
    while (Date.now() < deadline) {
      if (!processAlive(pid)) break;
      try {
        const res = await client.list({ kind: 'Node', allStacks: true }, 2000);
        const nodes = res.objectsJson.map((j) => JSON.parse(j) as Node);
        if (nodes.some((n) => n.metadata.name === config.nodeName && n.status.state === 'ready')) return;
      } catch {
        // not listening yet
      }
      await sleep(200);
    }
  } finally {
    client.close();
  }
  const logTail = await readFile(dataPaths(config).daemonLog, 'utf8').then((t) => t.split('\n').slice(-15).join('\n'), () => '');
  throw new Error(`tsd did not become ready (${processAlive(pid) ? 'still starting after 60 s' : 'it exited'}); last lines of ${dataPaths(config).daemonLog}:\n${logTail}`);
}

export async function clusterUp(config: DaemonConfig, out: (line: string) => void): Promise<void> {
  validateConfig(config);
  const existing = await readContext();
  if (existing?.local && processAlive(existing.local.pid)) {
    await waitReady(existing.local.config, existing.local.pid);
    out(`cluster is already up (tsd pid ${existing.local.pid}, API ${existing.server})`);
    return;
  }
  const paths = dataPaths(config);
  await mkdir(config.dataRoot, { recursive: true });
  const logFile = await open(paths.daemonLog, 'a');
  const child = spawn(process.execPath, ['--enable-source-maps', tsdMainPath(), 'run', ...daemonArgs(config)], {
    detached: true,
    stdio: ['ignore', logFile.fd, logFile.fd],
  });
  await logFile.close();
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start tsd');
  child.unref();
  await writeContext({ server: config.listen, local: { pid, config } });
  try {
    await waitReady(config, pid);
  } catch (err) {
    if (processAlive(pid)) process.kill(pid, 'SIGTERM');
    await removeContext();
    throw err;
  }
  out(`cluster is up: node ${config.nodeName} ready, tsd pid ${pid}, API ${config.listen}, metrics http://${config.metricsListen}/metrics`);
  out(`tsd log: ${paths.daemonLog}`);
}

/**
 * `cluster up --nodes N` (N > 1): every node in a network namespace of its own, on an underlay
 * bridge in this machine's namespace (172.31.X.0/24, the host is .254), so the nodes are
 * reachable from here.
 */
export async function clusterUpNetns(nodes: number, managers: number, baseDir: string, out: (line: string) => void): Promise<void> {
  const existing = await readContext();
  if (existing?.netns && existing.netns.nodes.some((n) => processAlive(n.pid))) {
    out(`a ${existing.netns.nodes.length}-node cluster is already up (API ${existing.server}); run tsctl cluster down first to change it`);
    return;
  }
  if (existing?.local && processAlive(existing.local.pid)) {
    throw new Error('a single-node cluster is up; run tsctl cluster down before building a multi-node one');
  }
  const state = await createNetnsCluster({
    prefix: 'tsc',
    nodes,
    managers,
    baseDir,
    underlayOctet: 213,
    hostBridge: true,
  });
  await writeContext({ server: state.apiSocket, netns: state });
  const managerNames = state.nodes.filter((n) => n.role === 'manager').map((n) => n.name);
  out(
    managers === 1
      ? `cluster is up: ${nodes} nodes ready (node-1 is the manager at ${state.managerAddress}; API also at ${state.apiSocket})`
      : `cluster is up: ${nodes} nodes ready, managers ${managerNames.join(', ')} (node-1 at ${state.managerAddress}; API also at ${state.apiSocket})`,
  );
  for (const node of state.nodes) out(`  ${node.name}  ${node.role.padEnd(7)}  ${node.underlayAddress}  netns ${node.netns}  log ${join(node.dataRoot, 'tsd.log')}`);
}

export async function clusterDown(out: (line: string) => void): Promise<void> {
  const context = await readContext();
  if (context?.netns) {
    await destroyNetnsCluster(context.netns, out);
    await removeContext();
    out(`cluster is down: ${context.netns.nodes.length} nodes, their namespaces, containers, cgroups and the underlay bridge removed`);
    return;
  }
  if (!context?.local) {
    out('no local cluster is recorded in the tsctl context; nothing to stop');
    return;
  }
  const { pid, config } = context.local;
  if (processAlive(pid)) {
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    while (processAlive(pid) && Date.now() < deadline) await sleep(100);
    if (processAlive(pid)) {
      out(`tsd (pid ${pid}) did not stop within ${STOP_TIMEOUT_MS / 1000} s; killing it`);
      process.kill(pid, 'SIGKILL');
      while (processAlive(pid)) await sleep(100);
    }
  }
  // Whatever tsd could not remove itself (it may have been killed) goes now.
  await cleanupNode(config, out);
  await rm(join(config.dataRoot, 'containers'), { recursive: true, force: true });
  // The cluster itself goes too (like deleting a kind cluster): the next `up` starts empty.
  await rm(join(config.dataRoot, 'raft'), { recursive: true, force: true });
  await removeContext();
  out('cluster is down: containers, mounts, links, cgroups and rules removed');
}
