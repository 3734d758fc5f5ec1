// One real netns cluster per security test file (1 manager + 2 workers unless a file asks for
// more), the root socket as an honest admin's client, and a way in to every node's TLS port from
// this process: a forwarder in the cluster's switch namespace (underlay-forwarder.ts) behind a
// unix socket, so the attacks run in-process against the real manager over real TCP and TLS.
// Each file passes its own slot, which picks its prefix and underlay octet, so files run
// concurrently; destroy() removes everything the cluster and these helpers made.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { unlessAbsent } from '../../agent/fs-errors.js';
import {
  createNetnsCluster,
  destroyNetnsCluster,
  type ClusterNodeState,
  type NetnsClusterOptions,
  type NetnsClusterState,
} from '../../cli/local-cluster/netns-cluster.js';
import { KINDS, type AnyObject, type Node } from '../../common/resources/types.js';
import type { TesseraClient } from '../../proto/gen/tessera/api/v1/Tessera.js';
import type { ListResponse__Output } from '../../proto/gen/tessera/api/v1/ListResponse.js';
import type { AuditLogResponse__Output } from '../../proto/gen/tessera/api/v1/AuditLogResponse.js';
import type { AuditEntry } from '../../control-plane/audit/audit-entry.js';
import { saveClusterLogs } from '../helpers/cluster-logs.js';
import { startUnderlayRegistry, type UnderlayRegistry } from '../helpers/underlay-registry.js';
import { apiClient, unary } from './grpc-calls.js';

const execFileAsync = promisify(execFile);
/** The system's tools, not node_modules/.bin's (npx puts @vercel/nft's `nft` first on PATH). */
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const FORWARDER = join(dirname(fileURLToPath(import.meta.url)), 'underlay-forwarder.ts');
const TSD_PORT = 7420;

/** Runs a system command (ip, nsenter, nft) with the system PATH; resolves with its output, rejects on a non-zero exit. */
export function system(
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; timeout?: number } = {},
): Promise<{ stdout: string; stderr: string }> {
  return execFileAsync(command, args, { timeout: options.timeout ?? 30_000, env: { ...process.env, ...options.env, PATH: SYSTEM_PATH } });
}

export interface SecurityClusterOptions {
  /** 0-3, one per test file: it keeps prefixes and underlay octets of concurrent files apart. */
  slot: number;
  nodes?: number;
  managers?: number;
  /** Start a registry with busybox on the underlay (for tests that need tasks to run). */
  registry?: boolean;
}

export interface ScratchNamespace {
  netns: string;
  address: string;
  remove(): Promise<void>;
}

export interface SecurityCluster {
  state: NetnsClusterState;
  options: NetnsClusterOptions;
  workDir: string;
  octet: number;
  /** node-1's root socket: local root, plaintext. */
  root: TesseraClient;
  registry?: UnderlayRegistry;
  /** A unix: address whose bytes reach `node`'s TLS port (default node-1, the manager). */
  tlsAddress(node?: ClusterNodeState): Promise<string>;
  node(name: string): ClusterNodeState;
  /** A namespace of its own on the underlay (not a node): where an outsider's tsd runs. */
  scratchNamespace(index: number): Promise<ScratchNamespace>;
  destroy(): Promise<void>;
}

/** An underlay octet in the slot's own range of 20: 20-39, 40-59, 60-79, 80-99. */
function slotOctet(slot: number): number {
  if (!Number.isInteger(slot) || slot < 0 || slot > 3) throw new Error(`security cluster slot must be 0-3, got ${slot}`);
  return 20 + slot * 20 + Math.floor(Math.random() * 20);
}

async function startForwarder(cluster: NetnsClusterState, socketPath: string, host: string): Promise<ChildProcess> {
  const child = spawn(
    'nsenter',
    [`--net=/run/netns/${cluster.switchNetns}`, process.execPath, '--import', 'tsx', FORWARDER, socketPath, host, String(TSD_PORT)],
    { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PATH: SYSTEM_PATH } },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the underlay forwarder to ${host} did not start within 15 s: ${stderr}`)), 15_000);
    child.stdout.on('data', (chunk: Buffer) => {
      if (!chunk.toString().includes('listening')) return;
      clearTimeout(timer);
      resolve();
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the underlay forwarder to ${host} exited with ${code}: ${stderr}`));
    });
  });
  return child;
}

export async function startSecurityCluster(options: SecurityClusterOptions): Promise<SecurityCluster> {
  const workDir = await mkdtemp(join(tmpdir(), `tessera-sec${options.slot}-`));
  const octet = slotOctet(options.slot);
  const clusterOptions: NetnsClusterOptions = {
    prefix: `s${options.slot}${randomBytes(3).toString('hex')}`,
    nodes: options.nodes ?? 3,
    managers: options.managers ?? 1,
    baseDir: join(workDir, 'cluster'),
    underlayOctet: octet,
    hostBridge: false,
    heartbeatMs: 300,
    nodeDownAfterMs: 4000,
    insecureRegistries: [`172.31.${octet}.254:5000`],
  };
  const forwarders = new Map<string, { process: ChildProcess; address: string }>();
  const scratch: ScratchNamespace[] = [];
  let state: NetnsClusterState | undefined;
  let root: TesseraClient | undefined;
  let registry: UnderlayRegistry | undefined;

  // Every step runs even when an earlier one failed; what failed is thrown at the end, all of it.
  const destroy = async (): Promise<void> => {
    const failures: string[] = [];
    const step = async (what: string, action: () => Promise<void> | void): Promise<void> => {
      try {
        await action();
      } catch (err) {
        failures.push(`${what}: ${(err as Error).message}`);
      }
    };
    await step('closing the root client', () => root?.close());
    for (const { process: child } of forwarders.values()) {
      await step('stopping a forwarder', () => {
        if (child.exitCode === null) child.kill('SIGTERM');
      });
    }
    forwarders.clear();
    for (const namespace of scratch.splice(0)) await step(`removing ${namespace.netns}`, () => namespace.remove());
    await step('stopping the registry', () => registry?.stop());
    const keep = process.env['TESSERA_TEST_KEEP_LOG_DIR'];
    const started = state;
    if (keep && started) await step('keeping the logs', () => saveClusterLogs(started, join(keep, `security-${options.slot}`)));
    if (started) await step('destroying the cluster', () => destroyNetnsCluster(started));
    await step(`removing ${workDir}`, () => rm(workDir, { recursive: true, force: true }));
    if (failures.length > 0) throw new Error(`security cluster clean-up: ${failures.join('; ')}`);
  };

  try {
    state = await createNetnsCluster(clusterOptions);
    root = apiClient(state.apiSocket);
    if (options.registry) registry = await startUnderlayRegistry(state, octet, workDir);
  } catch (err) {
    // The start's own error is the one thrown; a clean-up failure is added to it, not put in its place.
    await destroy().catch((cleanupErr: unknown) => {
      throw new Error(`${(err as Error).message} (and the clean-up failed: ${(cleanupErr as Error).message})`, { cause: err });
    });
    throw err;
  }
  const built = state;
  const node = (name: string): ClusterNodeState => {
    const found = built.nodes.find((n) => n.name === name);
    if (!found) throw new Error(`no node ${name} in the cluster (${built.nodes.map((n) => n.name).join(', ')})`);
    return found;
  };
  return {
    state: built,
    options: clusterOptions,
    workDir,
    octet,
    root,
    ...(registry ? { registry } : {}),
    node,
    tlsAddress: async (target = node('node-1')) => {
      const known = forwarders.get(target.name);
      if (known) return known.address;
      const socketPath = join(workDir, `tls-${target.name}.sock`);
      const child = await startForwarder(built, socketPath, target.underlayAddress);
      const address = `unix:${socketPath}`;
      forwarders.set(target.name, { process: child, address });
      return address;
    },
    scratchNamespace: async (index) => {
      const namespace = await makeScratchNamespace(built, octet, index);
      scratch.push(namespace);
      return namespace;
    },
    destroy,
  };
}

async function makeScratchNamespace(cluster: NetnsClusterState, octet: number, index: number): Promise<ScratchNamespace> {
  const netns = `${cluster.prefix}-x${index}`;
  const uplink = `${cluster.prefix}x${index}`;
  const address = `172.31.${octet}.${200 + index}`;
  const remove = async () => {
    // The veth goes with the namespace. Only a namespace that is already gone is fine to skip.
    if ((await unlessAbsent(stat(`/run/netns/${netns}`), undefined)) === undefined) return;
    await system('ip', ['netns', 'delete', netns]);
  };
  try {
    await system('ip', ['netns', 'add', netns]);
    await system('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    await system('ip', ['-n', cluster.switchNetns, 'link', 'add', uplink, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
    await system('ip', ['-n', cluster.switchNetns, 'link', 'set', uplink, 'master', cluster.bridge, 'up']);
    await system('ip', ['-n', netns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
    await system('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
  } catch (err) {
    await remove();
    throw err;
  }
  return { netns, address, remove };
}

/** Every object of every kind, as the root socket lists it. */
export async function listAll(root: TesseraClient): Promise<AnyObject[]> {
  const all: AnyObject[] = [];
  for (const kind of KINDS) {
    const res = await unary<ListResponse__Output>((options, callback) => root.list({ kind, allStacks: true }, options, callback));
    all.push(...res.objectsJson.map((json) => JSON.parse(json) as AnyObject));
  }
  return all;
}

/** What the store holds, as `Kind/stack/name@resourceVersion` lines: equal before and after means nothing was written. */
export async function storeFingerprint(root: TesseraClient): Promise<string[]> {
  return (await listAll(root)).map((o) => `${o.kind}/${o.metadata.stack ?? ''}/${o.metadata.name}@${o.metadata.resourceVersion ?? '?'}`).sort();
}

export async function nodeObject(root: TesseraClient, name: string): Promise<Node | undefined> {
  const res = await unary<ListResponse__Output>((options, callback) => root.list({ kind: 'Node', allStacks: true }, options, callback));
  return res.objectsJson.map((json) => JSON.parse(json) as Node).find((n) => n.metadata.name === name);
}

export async function auditEntries(root: TesseraClient, limit = 1000): Promise<Array<{ line: string; entry: AuditEntry }>> {
  const res = await unary<AuditLogResponse__Output>((options, callback) => root.auditLog({ limit, caller: '' }, options, callback));
  return res.entriesJson.map((line) => ({ line, entry: JSON.parse(line) as AuditEntry }));
}

export function tsdLogPath(node: ClusterNodeState): string {
  return join(node.dataRoot, 'tsd.log');
}

export function readTsdLog(node: ClusterNodeState): Promise<string> {
  return readFile(tsdLogPath(node), 'utf8');
}
