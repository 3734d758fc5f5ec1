// Certificate renewal and root CA rotation under load (issue 14), on a real cluster: three managers
// on the Raft store and a worker, each in a network namespace of its own, node certificates of
// one minute (renewed every ~40 s), four long-running busybox tasks, and a writer that keeps
// writing through every manager's API. Nothing may notice: no task restarts, no node leaves
// ready, no acknowledged write is lost. Then `tsctl cluster ca --rotate` under the same load: once
// it reports idle again, every certificate comes from the new root, only the new root is trusted,
// the managers sign with it, join tokens minted before no longer work, and the Raft group is whole.
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

import { ApiClient } from '../../cli/client.js';
import {
  addNetnsNode,
  createNetnsCluster,
  destroyNetnsCluster,
  type ClusterNodeState,
  type NetnsClusterOptions,
  type NetnsClusterState,
} from '../../cli/local-cluster/netns-cluster.js';
import type { Node, Service, Task } from '../../common/resources/types.js';
import { saveClusterLogs } from '../helpers/cluster-logs.js';
import { eventually } from '../helpers/eventually.js';
import { startUnderlayRegistry, type UnderlayRegistry } from '../helpers/underlay-registry.js';
import { assertNoLostWrite, SteadyWriter, type WriterTarget } from './renewal-rotation-writer.js';
import { ClusterWatch, fingerprintOf, issuedByRoot, readNodeCertFiles, samePem, taskDifferences, type Observation } from './renewal-rotation-watch.js';

const run = promisify(execFile);
const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TSD = join(REPO, 'dist', 'daemon', 'main.js');
const TSCTL = join(REPO, 'dist', 'cli', 'main.js');

/** This test's own underlay (the cluster's switch namespace keeps it apart from other clusters anyway). */
const OCTET = 71;
const STACK = 'rr';
const STEADY = 'steady';
const REPLICAS = 4;
const CERT_VALIDITY_MS = 60_000;
const RENEWAL_WINDOW_MS = 90_000;
const WRITE_EVERY_MS = 200;

interface Lab {
  cluster: NetnsClusterState;
  options: NetnsClusterOptions;
  image: string;
  workDir: string;
  /** The root socket (node-1's API). */
  api: ApiClient;
  /** Every manager's API, by node name. */
  managers: Map<string, ApiClient>;
}

function service(image: string, name: string, replicas: number, extra: Partial<Service['spec']> = {}): Service {
  return {
    apiVersion: 'tessera/v1',
    kind: 'Service',
    metadata: { name, stack: STACK },
    spec: { image, command: ['sleep', '3600'], replicas, stopGracePeriodMs: 300, ...extra },
  };
}

async function tasksOf(api: ApiClient, name: string): Promise<Task[]> {
  return (await api.list({ kind: 'Task', stack: STACK, service: name })).objectsJson.map((j) => JSON.parse(j) as Task);
}

async function nodesOf(api: ApiClient): Promise<Node[]> {
  return (await api.list({ kind: 'Node', allStacks: true })).objectsJson.map((j) => JSON.parse(j) as Node);
}

async function tsctl(socket: string, ...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [TSCTL, '--server', socket, ...args], { timeout: 30_000 });
  return stdout;
}

function parseMembers(out: string): Array<{ id: string; role: string }> {
  return out
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => {
      const [id, , role] = line.trim().split(/\s+/);
      return { id: id ?? '', role: role ?? '' };
    });
}

function lastLine(output: string): string {
  return output.trim().split('\n').filter(Boolean).at(-1) ?? '(no output)';
}

function describe(observations: readonly Observation[]): string {
  return observations.map((o) => `+${(o.atMs / 1000).toFixed(1)}s ${o.what}`).join('\n');
}

/** Lines of each node's tsd.log about certificates, trust, failures: what a post-mortem reads first. */
async function evidence(cluster: NetnsClusterState): Promise<string> {
  const interesting = /certificate|root CA|rotation|trust|renew|refus|error|fail|restart|down|leader|UNAUTH|handshake/i;
  const parts: string[] = [];
  for (const node of cluster.nodes) {
    const log = await readFile(join(node.dataRoot, 'tsd.log'), 'utf8').catch((err: Error) => `(no log: ${err.message})`);
    parts.push(
      `--- ${node.name} (${node.role})\n${log
        .split('\n')
        .filter((line) => interesting.test(line))
        .slice(-40)
        .join('\n')}`,
    );
  }
  return parts.join('\n');
}

async function buildLab(t: ExecutionContext, prefix: string, workDir: string): Promise<{ lab: Lab; registry: UnderlayRegistry }> {
  const options: NetnsClusterOptions = {
    prefix,
    nodes: 4,
    managers: 3,
    baseDir: join(workDir, 'cluster'),
    underlayOctet: OCTET,
    hostBridge: false,
    heartbeatMs: 300,
    nodeDownAfterMs: 6000,
    insecureRegistries: [`172.31.${OCTET}.254:5000`],
    daemon: { certValidityMs: CERT_VALIDITY_MS, store: 'raft' },
  };
  const startedAt = Date.now();
  const cluster = await createNetnsCluster(options);
  t.log(`cluster of 3 managers + 1 worker ready in ${Date.now() - startedAt} ms`);
  const api = new ApiClient(cluster.apiSocket, 10_000);
  const managers = new Map(cluster.nodes.filter((n) => n.role === 'manager').map((n) => [n.name, new ApiClient(n.apiSocket!, 10_000)] as const));
  const lab: Lab = { cluster, options, image: '', workDir, api, managers };
  try {
    const registry = await startUnderlayRegistry(cluster, OCTET, workDir);
    lab.image = registry.image;
    return { lab, registry };
  } catch (err) {
    closeClients(lab);
    await destroyNetnsCluster(cluster);
    throw err;
  }
}

function closeClients(lab: Lab): void {
  lab.api.close();
  for (const client of lab.managers.values()) client.close();
}

/** Starts the four steady tasks (one per node) and the churn service; returns the steady tasks once all run. */
async function startServices(t: ExecutionContext, lab: Lab): Promise<Task[]> {
  await lab.api.apply({
    objectsJson: [
      JSON.stringify(service(lab.image, STEADY, REPLICAS, { placement: { maxReplicasPerNode: 1 } })),
      JSON.stringify(service(lab.image, 'churn', 1)),
    ],
  });
  const running = await eventually(
    `${REPLICAS} running ${STEADY} tasks`,
    async () => {
      const live = (await tasksOf(lab.api, STEADY)).filter((x) => x.desiredState === 'running' && x.status.state === 'running' && x.status.containerId);
      return live.length === REPLICAS ? live : undefined;
    },
    120_000,
    500,
  );
  t.deepEqual(running.map((x) => x.nodeName ?? '-').sort(), lab.cluster.nodes.map((n) => n.name).sort(), 'one steady task on every node');
  return running;
}

/** A join attempt with `token` from a fresh data root in `via`'s namespace: tsd's own output and whether it exited. */
async function joinAttempt(lab: Lab, via: ClusterNodeState, nodeName: string, token: string): Promise<{ exited: boolean; output: string }> {
  const dataRoot = join(lab.workDir, nodeName);
  try {
    const { stdout, stderr } = await run(
      'nsenter',
      [
        `--net=/run/netns/${via.netns}`,
        process.execPath,
        TSD,
        'join',
        '--node-name',
        nodeName,
        '--data-root',
        dataRoot,
        '--cgroup-parent',
        `${lab.cluster.prefix}/${nodeName}`,
        '--bridge',
        'rrprobe0',
        '--subnet',
        '10.99.98.0/24',
        '--nft-table',
        'rrprobe',
        '--listen',
        '127.0.0.1:7499',
        '--metrics-listen',
        '127.0.0.1:7498',
        lab.cluster.managerAddress,
      ],
      // The token through the environment, as an operator would pass it; never on argv.
      { timeout: 20_000, env: { ...process.env, TESSERA_JOIN_TOKEN: token } },
    );
    return { exited: true, output: `${stdout}${stderr}` };
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string; signal?: string | null };
    // Killed at the timeout: it was still running, i.e. it got in.
    return { exited: !e.signal, output: `${e.stdout ?? ''}${e.stderr ?? ''}${e.message}` };
  } finally {
    await rm(dataRoot, { recursive: true, force: true });
  }
}

function processAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function fileExists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false;
      throw err;
    },
  );
}

/** Every node's leaf is from `rootPem` and its roots.pem holds that root alone; returns what is not so yet. */
async function nodesNotOnRoot(nodes: readonly ClusterNodeState[], rootPem: string): Promise<string[]> {
  const wrong: string[] = [];
  for (const node of nodes) {
    const files = await readNodeCertFiles(node);
    if (!(await issuedByRoot(files.chainPems[0]!, rootPem))) wrong.push(`${node.name}: node.crt not issued by the new root`);
    if (files.rootPems.length !== 1 || !samePem(files.rootPems[0]!, rootPem))
      wrong.push(`${node.name}: roots.pem holds ${files.rootPems.length} root(s), not the new one alone`);
  }
  return wrong;
}

/** Managers keep no CA in files (its key, the new root's during the rotation, is in the store). Returns the files found. */
async function managersWithCaFiles(nodes: readonly ClusterNodeState[]): Promise<string[]> {
  const wrong: string[] = [];
  for (const node of nodes.filter((n) => n.role === 'manager')) {
    const certs = join(node.dataRoot, 'certs');
    for (const file of ['ca.crt', 'ca.key', 'ca-next.crt', 'ca-next.key']) if (await fileExists(join(certs, file))) wrong.push(`${node.name}: ${file} exists`);
  }
  return wrong;
}

/** The roots in a node's roots.pem. */
async function rootsOf(node: ClusterNodeState): Promise<string[]> {
  return (await readNodeCertFiles(node)).rootPems;
}

/** Polls `tsctl cluster ca` until it says idle; logs each new progress line. Returns the lines seen. */
async function waitForRotationIdle(t: ExecutionContext, socket: string, startedAt: number): Promise<string[]> {
  const seen: string[] = [];
  await eventually(
    () => `tsctl cluster ca to say idle; it said: ${seen.at(-1) ?? '(nothing)'}`,
    async () => {
      const line = (await tsctl(socket, 'cluster', 'ca')).trim();
      if (seen.at(-1) !== line) {
        seen.push(line);
        t.log(`+${Date.now() - startedAt} ms: ${line}`);
      }
      return line.startsWith('CA rotation idle') ? true : undefined;
    },
    120_000,
    500,
  );
  return seen;
}

test('node certificates renew and the root CA rotates under load: no task restarts, no write is lost', async (t) => {
  t.timeout(420_000);
  const prefix = `rr${randomBytes(3).toString('hex')}`;
  const workDir = await mkdtemp(join(tmpdir(), `tessera-${prefix}-`));
  let lab: Lab | undefined;
  let registry: UnderlayRegistry | undefined;
  let writer: SteadyWriter | undefined;
  let watch: ClusterWatch | undefined;
  t.teardown(async () => {
    await writer?.stop();
    await watch?.stop();
    if (lab) {
      closeClients(lab);
      const keep = process.env.TESSERA_TEST_KEEP_LOG_DIR ?? (t.passed ? undefined : join(tmpdir(), `tessera-${prefix}-logs`));
      if (keep) {
        await saveClusterLogs(lab.cluster, keep);
        t.log(`node logs kept in ${keep}`);
      }
      if (!t.passed) t.log(await evidence(lab.cluster));
      await destroyNetnsCluster(lab.cluster);
    }
    registry?.stop();
    await rm(workDir, { recursive: true, force: true });
  });
  ({ lab, registry } = await buildLab(t, prefix, workDir));
  const { cluster, api } = lab;
  const steady = await startServices(t, lab);
  const baseline = new Map(steady.map((task) => [task.metadata.name, fingerprintOf(task)]));
  const worker = cluster.nodes.find((n) => n.role === 'worker')!;
  const target: WriterTarget = { stack: STACK, churnService: 'churn', labelNode: worker.name };
  const load = new SteadyWriter([...lab.managers.values()], target, WRITE_EVERY_MS);
  const seen = new ClusterWatch({ nodes: () => cluster.nodes, api, stack: STACK, service: STEADY, baseline });
  [writer, watch] = [load, seen];
  seen.start();
  load.start();

  // 1. Renewal under load.
  await sleep(RENEWAL_WINDOW_MS);
  const renewals = cluster.nodes.map((n) => ({ node: n.name, times: seen.renewals.get(n.name) ?? [] }));
  t.log(
    `renewals in ${RENEWAL_WINDOW_MS / 1000} s: ${renewals.map((r) => `${r.node} ${r.times.length}× at ${r.times.map((ms) => `${(ms / 1000).toFixed(0)}s`).join(',')}`).join('; ')}`,
  );
  for (const r of renewals) t.true(r.times.length >= 1, `${r.node} renewed its certificate at least once in ${RENEWAL_WINDOW_MS / 1000} s`);
  const renewalAcked = [...load.acked];
  const renewalFailures = load.failures;
  t.log(
    `renewal phase: ${renewalAcked.length} writes acknowledged, ${renewalFailures} failed attempts (retried)${load.errors.length ? `: ${load.errors.join(' | ')}` : ''}`,
  );
  // The writer goes on into the rotation phase: a write after this snapshot may already show.
  await assertNoLostWrite(lab.managers, target, renewalAcked, true);
  t.deepEqual(taskDifferences(baseline, await tasksOf(api, STEADY)), [], 'the steady tasks are the same containers after renewal');
  t.is(describe(seen.taskChanges), '', 'no steady task changed during renewal');
  t.is(describe(seen.notReady), '', 'every node stayed ready during renewal');

  // 2. Root CA rotation under the same load.
  const oldWorkerToken = (await api.joinToken('worker', false)).token;
  const node1 = cluster.nodes[0]!;
  const [oldRootPem] = await rootsOf(node1);
  t.truthy(oldRootPem, 'node-1 trusts one root before the rotation');
  seen.resetRenewals();
  const rotationStart = Date.now();
  const started = await api.rotateCa(false);
  t.is(started.state, 'started', `RotateCa: ${started.state} ${started.message}`);
  // The manager asked (node-1, behind the root socket) made the new root; its key is in the store,
  // and every node trusts both roots (roots.pem: old, new) until the rotation completes.
  t.deepEqual(await managersWithCaFiles(cluster.nodes), [], 'no manager keeps the CA in a file');
  const newRootPem = await eventually('node-1 to trust the new root too', async () => {
    const roots = await rootsOf(node1);
    return roots.length === 2 ? roots[1] : undefined;
  });
  t.false(samePem(newRootPem, oldRootPem!), 'a new root');
  const progress = await waitForRotationIdle(t, cluster.apiSocket, rotationStart);
  const rotationMs = Date.now() - rotationStart;
  t.log(
    `rotation: idle after ${rotationMs} ms (${progress.length} distinct states); renewals during it: ${cluster.nodes.map((n) => `${n.name} ${seen.renewalCount(n.name)}`).join(', ')}`,
  );

  t.deepEqual(await managersWithCaFiles(cluster.nodes), [], 'no manager keeps the CA in a file after the rotation either');
  for (const node of cluster.nodes) {
    const leaf = (await readNodeCertFiles(node)).chainPems[0]!;
    t.true(await issuedByRoot(leaf, newRootPem), `${node.name}'s node.crt is issued by the new root once the rotation is idle`);
  }
  // roots.pem is rewritten only at a renewal; the in-memory trust drops the old root at once (TrustUpdate), the
  // file follows at the node's next scheduled renewal. What the files say at idle time is logged as a finding.
  let wrongNodes = await nodesNotOnRoot(cluster.nodes, newRootPem);
  t.log(`at idle: ${wrongNodes.length === 0 ? 'every node file already on the new root alone' : wrongNodes.join('; ')}`);
  await eventually(
    () => `every node to hold the new root alone: ${wrongNodes.join('; ')}`,
    async () => (wrongNodes = await nodesNotOnRoot(cluster.nodes, newRootPem)).length === 0,
    CERT_VALIDITY_MS,
    500,
  );
  t.log(`every roots.pem holds the new root alone ${Date.now() - rotationStart - rotationMs} ms after the rotation went idle`);

  await load.stop();
  await seen.stop();
  t.log(
    `rotation phase: ${load.acked.length - renewalAcked.length} writes acknowledged, ${load.failures - renewalFailures} failed attempts (retried)` +
      (load.errors.length ? `; errors seen overall: ${load.errors.join(' | ')}` : ''),
  );
  t.deepEqual(load.gaveUp, [], 'every failed write succeeded on retry');
  await assertNoLostWrite(lab.managers, target, load.acked);
  t.deepEqual(taskDifferences(baseline, await tasksOf(api, STEADY)), [], 'the steady tasks are the same containers after the rotation');
  t.is(describe(seen.taskChanges), '', 'no steady task changed during the rotation');
  t.is(describe(seen.notReady), '', 'every node stayed ready during the rotation');
  t.log(`API read errors seen by the watch: ${seen.readErrors.length}${seen.readErrors.length ? `\n${describe(seen.readErrors)}` : ''}`);

  // Join tokens: the old one pins the old root (the joiner refuses the managers), and its secret is gone too.
  const refused = await joinAttempt(lab, worker, 'old-token', oldWorkerToken);
  t.true(refused.exited, `tsd join with a pre-rotation token exits: ${refused.output}`);
  // Normally the joiner refuses (the managers now present the new root); a manager that has not yet
  // renewed since the rotation completed still presents the old root, and then refuses the old secret.
  t.regex(refused.output, /refusing to join|pins|not valid for this cluster/, 'the pre-rotation token no longer joins');
  t.log(`pre-rotation token: ${lastLine(refused.output)}`);
  const newDigest = (await api.joinToken('worker', false)).token.split('-')[2]!;
  const [prefixField, version, , oldSecret] = oldWorkerToken.split('-');
  const oldSecretNewPin = await joinAttempt(lab, worker, 'old-secret', [prefixField, version, newDigest, oldSecret].join('-'));
  t.true(oldSecretNewPin.exited, `tsd join with the pre-rotation secret exits: ${oldSecretNewPin.output}`);
  t.regex(oldSecretNewPin.output, /not valid for this cluster/, 'the managers refuse the pre-rotation secret');
  t.log(`pre-rotation secret with the new root's digest: ${lastLine(oldSecretNewPin.output)}`);
  t.false(
    (await nodesOf(api)).some((n) => ['old-token', 'old-secret'].includes(n.metadata.name)),
    'no node joined with an old token',
  );
  // addNetnsNode mints a token after the rotation: it works.
  const joinedAt = Date.now();
  const late = await addNetnsNode(cluster, lab.options);
  const lateFiles = await readNodeCertFiles(late);
  t.true(
    await issuedByRoot(lateFiles.chainPems[0]!, newRootPem),
    `${late.name} joined with a new token in ${Date.now() - joinedAt} ms, certificate from the new root`,
  );
  t.true(lateFiles.rootPems.length === 1 && samePem(lateFiles.rootPems[0]!, newRootPem), `${late.name} trusts the new root alone`);

  const nodes = await nodesOf(api);
  t.deepEqual(
    nodes.filter((n) => n.status.state !== 'ready').map((n) => `${n.metadata.name} ${n.status.state}`),
    [],
    'all five nodes ready',
  );
  t.is(nodes.length, 5);
  const members = parseMembers(await tsctl(cluster.apiSocket, 'cluster', 'members'));
  t.deepEqual(members.map((m) => m.id).sort(), ['node-1', 'node-2', 'node-3'], 'the Raft group is the three managers');
  t.deepEqual(members.map((m) => m.role).sort(), ['follower', 'follower', 'leader'], 'three voters, one leader');
  t.deepEqual(taskDifferences(baseline, await tasksOf(api, STEADY)), [], 'the steady tasks are still the same containers');
  t.deepEqual(
    steady.filter((task) => !processAlive(task.status.pid)).map((task) => `${task.metadata.name} pid ${task.status.pid}`),
    [],
    'every steady container process started before the test phases still runs',
  );
});
