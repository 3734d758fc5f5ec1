// End to end on a 3-node cluster of network namespaces (the same code as `tsctl cluster up
// --nodes 3`): placement across nodes (constraints, preferences, max replicas per node, host-mode
// ports), node failure, drain, labels, join tokens.
// Images come from a real registry the test runs on the cluster's underlay.
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { ApiClient } from '../../cli/client.js';
import { addUser } from '../../cli/commands/user-add.js';
import { parseIdentity } from '../../common/identity/certificate.js';
import { LOCAL_INSECURE } from '../../common/transport/credentials.js';
import { MembersApiClient } from '../../control-plane/raft/host/members-api.js';
import type { Node, Service, Task } from '../../common/resources/types.js';
import type { ClusterEventMessage__Output } from '../../proto/gen/tessera/api/v1/ClusterEventMessage.js';
import type { LogLine__Output } from '../../proto/gen/tessera/api/v1/LogLine.js';
import { saveClusterLogs } from '../helpers/cluster-logs.js';
import {
  addNetnsNode,
  restartNetnsNode,
  createNetnsCluster,
  destroyNetnsCluster,
  type NetnsClusterOptions,
  type NetnsClusterState,
} from '../../cli/local-cluster/netns-cluster.js';
import { startUnderlayRegistry, type UnderlayRegistry } from '../helpers/underlay-registry.js';
import { eventually } from '../helpers/eventually.js';

const run = promisify(execFile);

let cluster: NetnsClusterState;
let clusterOptions: NetnsClusterOptions;
let client: ApiClient;
let workDir: string;
let registry: UnderlayRegistry | undefined;
let image: string;
const octet = 100 + Math.floor(Math.random() * 100);
const registryHost = `172.31.${octet}.254:5000`;

async function apply(name: string, spec: Partial<Service['spec']>): Promise<void> {
  const object: Service = {
    apiVersion: 'tessera/v1',
    kind: 'Service',
    metadata: { name, stack: 'mn' },
    spec: { image, command: ['sleep', '100000'], ...spec },
  };
  await client.apply({ objectsJson: [JSON.stringify(object)] });
}

async function tasksOf(service: string): Promise<Task[]> {
  const res = await client.list({ kind: 'Task', stack: 'mn', service });
  return res.objectsJson.map((j) => JSON.parse(j) as Task);
}

async function runningOf(service: string, count: number): Promise<Task[] | undefined> {
  const all = await tasksOf(service);
  const live = all.filter((t) => t.desiredState === 'running' && t.status.state === 'running');
  if (live.length === count) return live;
  // The last observation becomes the timeout's message.
  throw new Error(
    `${live.length}/${count} running: ${all.map((t) => `${t.metadata.name}@${t.nodeName ?? '-'} ${t.status.state} ${t.status.message ?? ''}`).join('; ')}`,
  );
}

function perNode(tasks: Task[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const t of tasks) counts[t.nodeName ?? '-'] = (counts[t.nodeName ?? '-'] ?? 0) + 1;
  return counts;
}

test.before(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'tessera-mn-'));
  const prefix = `m${process.pid.toString(36).slice(-4)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`;
  clusterOptions = {
    prefix,
    nodes: 3,
    baseDir: join(workDir, 'cluster'),
    underlayOctet: octet,
    hostBridge: false,
    heartbeatMs: 300,
    // Long enough that a tsd killed and restarted on a loaded machine (10 s seen on 2 busy cores) is
    // back before its node is declared down, so the takeover test sees a takeover, not replacements.
    nodeDownAfterMs: 12_000,
    insecureRegistries: [registryHost],
  };
  cluster = await createNetnsCluster(clusterOptions);
  client = new ApiClient(cluster.apiSocket);
  registry = await startUnderlayRegistry(cluster, octet, workDir);
  image = registry.image;
});

test.after.always(async () => {
  // before() may have failed before assigning these: the declared types do not hold here.
  const started = cluster as NetnsClusterState | undefined;
  (client as ApiClient | undefined)?.close();
  const keep = process.env.TESSERA_TEST_KEEP_LOG_DIR;
  if (keep && started) await saveClusterLogs(started, keep);
  if (started) await destroyNetnsCluster(started);
  registry?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

test.serial('three nodes join and report ready, each with its own hostname and address', async (t) => {
  const nodes = (await client.list({ kind: 'Node', allStacks: true })).objectsJson.map((j) => JSON.parse(j) as Node);
  t.deepEqual(nodes.map((n) => n.metadata.name).sort(), ['node-1', 'node-2', 'node-3']);
  t.true(nodes.every((n) => n.status.state === 'ready'));
  t.deepEqual(nodes.map((n) => n.status.hostname).sort(), ['node-1', 'node-2', 'node-3']);
  t.deepEqual(nodes.map((n) => n.spec.role).sort(), ['manager', 'worker', 'worker']);
  t.is(new Set(nodes.map((n) => n.status.address)).size, 3);
});

test.serial('replicas spread over the nodes and run there', async (t) => {
  await apply('spread', { replicas: 6 });
  const tasks = await eventually('6 running tasks', () => runningOf('spread', 6), 90_000);
  t.deepEqual(perNode(tasks), { 'node-1': 2, 'node-2': 2, 'node-3': 2 });
});

test.serial("every node serves its own tasks' container metrics over mutual TLS, to a viewer's PEM files", async (t) => {
  // As Prometheus scrapes: the viewer's PEM files, each node checked by the IP address its certificate names.
  const pemDir = join(workDir, 'prometheus-tls');
  await addUser(client, 'prometheus', { role: 'viewer', output: join(workDir, 'prometheus.tessera.json'), pemDir });
  const curl = (url: string, ...args: string[]) =>
    run('nsenter', [`--net=/run/netns/${cluster.switchNetns}`, 'curl', '-sS', '--fail', '--max-time', '10', '--cacert', join(pemDir, 'ca.pem'), ...args, url]);
  const nodes = (await client.list({ kind: 'Node', allStacks: true })).objectsJson.map((j) => JSON.parse(j) as Node);
  for (const node of nodes) {
    const name = node.metadata.name;
    const url = `https://${node.status.address}:7421/metrics`;
    // A worker answers once its session has brought the revocation list (503 until then).
    const body = await eventually(
      `${name}'s /metrics`,
      () =>
        curl(url, '--cert', join(pemDir, 'cert.pem'), '--key', join(pemDir, 'key.pem')).then(
          (r) => r.stdout,
          () => undefined,
        ),
      30_000,
    );
    t.regex(body, new RegExp(`^container_cpu_usage_seconds_total\\{[^}]*node="${name}",stack="[^"]*",service="spread"[^}]*\\} `, 'm'), name);
    t.notRegex(body, new RegExp(`^container_[^{]*\\{[^}]*node="(?!${name}")`, 'm'), `${name} publishes its own containers only`);
    await t.throwsAsync(curl(url), undefined, `${name} refuses a scrape without a client certificate`);
  }
});

test.serial('a join with a wrong token is refused', async (t) => {
  const node = cluster.nodes[2]!;
  // The right cluster's digest (from a real token) with a secret the cluster never issued.
  const real = (await client.joinToken('worker', false)).token;
  const forged = `${real.slice(0, real.lastIndexOf('-') + 1)}${'a'.repeat(26)}`;
  const err = await t.throwsAsync(
    run(
      'nsenter',
      [
        `--net=/run/netns/${node.netns}`,
        process.execPath,
        join(process.cwd(), 'dist/daemon/main.js'),
        'join',
        '--node-name',
        'intruder',
        '--data-root',
        join(workDir, 'intruder'),
        '--cgroup-parent',
        `${cluster.prefix}/intruder`,
        '--bridge',
        'tsintr0',
        '--subnet',
        '10.99.99.0/24',
        '--nft-table',
        'intruder',
        '--listen',
        '127.0.0.1:7499',
        '--metrics-listen',
        '127.0.0.1:7498',
        cluster.managerAddress,
      ],
      { timeout: 30_000, env: { ...process.env, TESSERA_JOIN_TOKEN: forged } },
    ),
  );
  t.regex(String((err as Error & { stderr?: string }).stderr ?? err.message), /the join token is not valid for this cluster/);
  const names = (await client.list({ kind: 'Node', allStacks: true })).objectsJson.map((j) => (JSON.parse(j) as Node).metadata.name);
  t.false(names.includes('intruder'));
  await rm(join(workDir, 'intruder'), { recursive: true, force: true });
});

test.serial('promote and demote: the certificate carries the new role, the Raft group gains and loses the member', async (t) => {
  const node2 = cluster.nodes[1]!;
  const certs = join(node2.dataRoot, 'certs');
  const roleOf = async () => parseIdentity(await readFile(join(certs, 'node.crt'), 'utf8')).ou;
  const members = new MembersApiClient(cluster.apiSocket, LOCAL_INSECURE);
  t.teardown(() => members.close());
  const memberIds = async () => (await members.members()).map((m) => m.id).sort();
  t.is(await roleOf(), 'worker');

  await client.updateNode({ name: 'node-2', availability: '', addLabels: {}, removeLabels: [], role: 'manager' });
  await eventually(
    'node-2 a voter',
    async () => ((await members.members()).some((m) => m.id === 'node-2' && (m.role === 'follower' || m.role === 'leader')) ? true : undefined),
    60_000,
  );
  t.is(await roleOf(), 'manager', "node-2's certificate was reissued as a manager's");
  t.false(existsSync(join(certs, 'ca.key')), 'a manager keeps no CA key file: the key is in the store it now replicates');

  // node-1 leads: demoting it is refused, as is leaving the cluster without a manager later.
  const refused = await t.throwsAsync(client.updateNode({ name: 'node-1', availability: '', addLabels: {}, removeLabels: [], role: 'worker' }));
  t.regex(refused.message, /leads the Raft group/);

  await client.updateNode({ name: 'node-2', availability: '', addLabels: {}, removeLabels: [], role: 'worker' });
  t.deepEqual(await memberIds(), ['node-1'], 'out of the Raft group before its certificate changes');
  await eventually('node-2 renewed as a worker', async () => ((await roleOf()) === 'worker' ? true : undefined), 60_000);
  const nodes = (await client.list({ kind: 'Node', allStacks: true })).objectsJson.map((j) => JSON.parse(j) as Node);
  t.is(nodes.find((n) => n.metadata.name === 'node-2')?.spec.role, 'worker');
  await eventually('node-2 ready', async () => {
    const listed = (await client.list({ kind: 'Node', allStacks: true })).objectsJson.map((j) => JSON.parse(j) as Node);
    return listed.find((n) => n.metadata.name === 'node-2')?.status.state === 'ready' ? true : undefined;
  });
  const last = await t.throwsAsync(client.updateNode({ name: 'node-1', availability: '', addLabels: {}, removeLabels: [], role: 'worker' }));
  t.regex(last.message, /only manager/);
});

test.serial('constraints on node labels place tasks only where they match', async (t) => {
  await client.updateNode({ name: 'node-2', availability: '', addLabels: { zone: 'b' }, removeLabels: [] });
  await apply('zoned', { replicas: 2, placement: { constraints: ['node.labels.zone==b'] } });
  const tasks = await eventually('2 running zoned tasks', () => runningOf('zoned', 2), 60_000);
  t.deepEqual(perNode(tasks), { 'node-2': 2 });
  await apply('nowhere', { replicas: 1, placement: { constraints: ['node.labels.zone==q'] } });
  const pending = await eventually(
    'a pending task with a reason',
    async () => {
      const task = (await tasksOf('nowhere'))[0];
      return task?.status.state === 'pending' ? task : undefined;
    },
    20_000,
  );
  t.regex(pending.status.schedulingReason ?? '', /3 nodes: 3 failed constraint node\.labels\.zone==q/);
  await client.delete({
    refs: [
      { kind: 'Service', stack: 'mn', name: 'zoned' },
      { kind: 'Service', stack: 'mn', name: 'nowhere' },
    ],
  });
});

test.serial("placement preferences spread replicas over a zone label's values, not over nodes", async (t) => {
  // node-2 is in zone b already (previous case); node-1 alone in zone a, node-3 joins b.
  await client.updateNode({ name: 'node-1', availability: '', addLabels: { zone: 'a' }, removeLabels: [] });
  await client.updateNode({ name: 'node-3', availability: '', addLabels: { zone: 'b' }, removeLabels: [] });
  await apply('zonal', { replicas: 6, placement: { preferences: [{ spread: 'node.labels.zone' }] } });
  const tasks = await eventually('6 running zonal tasks', () => runningOf('zonal', 6), 90_000);
  const counts = perNode(tasks);
  // Plain spread would give 2/2/2; half the replicas go to each zone: 3 on node-1, 3 shared by b.
  t.is(counts['node-1'], 3);
  t.deepEqual(
    [counts['node-2'] ?? 0, counts['node-3'] ?? 0].sort((a, b) => a - b),
    [1, 2],
  );
  await client.delete({ refs: [{ kind: 'Service', stack: 'mn', name: 'zonal' }] });
});

test.serial('max replicas per node leaves the replicas beyond it pending, with the reason', async (t) => {
  await apply('capped', { replicas: 4, placement: { maxReplicasPerNode: 1 } });
  const tasks = await eventually('3 running capped tasks', () => runningOf('capped', 3), 90_000);
  t.deepEqual(perNode(tasks), { 'node-1': 1, 'node-2': 1, 'node-3': 1 });
  const pending = await eventually(
    'the 4th capped task pending with a reason',
    async () => {
      const task = (await tasksOf('capped')).find((x) => x.status.state === 'pending');
      return task?.status.schedulingReason ? task : undefined;
    },
    20_000,
  );
  t.is(pending.status.schedulingReason, 'no suitable node (3 nodes: 3 max replicas per node (1) reached)');
  await client.delete({ refs: [{ kind: 'Service', stack: 'mn', name: 'capped' }] });
});

/** What node `address` answers on `port` from the underlay switch, or undefined when nothing does. */
async function fetchFromUnderlay(address: string, port: number): Promise<string | undefined> {
  try {
    const { stdout } = await run(
      'nsenter',
      [`--net=/run/netns/${cluster.switchNetns}`, '/bin/busybox', 'wget', '-q', '-O', '-', `http://${address}:${port}/`],
      { timeout: 5000 },
    );
    return stdout.trim();
  } catch {
    return undefined;
  }
}

test.serial('a host-mode port answers only on the node running the task, and goes with it', async (t) => {
  const httpd = ['sh', '-c', 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www'];
  const ports = [{ target: 80, published: 8088, mode: 'host' as const }];
  await apply('hostport', { command: httpd, replicas: 1, ports, stopGracePeriodMs: 300, placement: { constraints: ['node.hostname==node-2'] } });
  await eventually('the hostport task running', () => runningOf('hostport', 1), 60_000);
  const [node1, node2, node3] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
  const answer = await eventually('port 8088 on node-2', async () => fetchFromUnderlay(node2.underlayAddress, 8088), 20_000);
  t.truthy(answer, 'the container answers on its node');
  t.is(await fetchFromUnderlay(node1.underlayAddress, 8088), undefined, 'no routing mesh: node-1 does not answer');
  t.is(await fetchFromUnderlay(node3.underlayAddress, 8088), undefined, 'no routing mesh: node-3 does not answer');

  // Two tasks publishing the same host port cannot share a node: the scheduler says why.
  await apply('hostport2', { command: httpd, replicas: 1, ports, stopGracePeriodMs: 300, placement: { constraints: ['node.hostname==node-2'] } });
  const blocked = await eventually(
    'hostport2 pending with a reason',
    async () => {
      const x = (await tasksOf('hostport2'))[0];
      return x?.status.state === 'pending' && x.status.schedulingReason ? x : undefined;
    },
    20_000,
  );
  t.is(blocked.status.schedulingReason, 'no suitable node (3 nodes: 2 failed constraint node.hostname==node-2, 1 host port 8088/tcp in use)');

  // When the task goes, so does its port; the waiting task takes the node and the port.
  await client.delete({ refs: [{ kind: 'Service', stack: 'mn', name: 'hostport' }] });
  await eventually('hostport2 running on node-2', () => runningOf('hostport2', 1), 60_000);
  await eventually(
    'port 8088 on node-2 served by hostport2',
    async () => ((await fetchFromUnderlay(node2.underlayAddress, 8088)) !== undefined ? true : undefined),
    20_000,
  );
  await client.delete({ refs: [{ kind: 'Service', stack: 'mn', name: 'hostport2' }] });
  await eventually(
    'port 8088 closed once hostport2 is gone',
    async () => ((await fetchFromUnderlay(node2.underlayAddress, 8088)) === undefined ? true : undefined),
    30_000,
  );
  t.pass();
});

test.serial('drain moves tasks off a node and nothing returns to it', async (t) => {
  await client.updateNode({ name: 'node-3', availability: 'drain', addLabels: {}, removeLabels: [] });
  const tasks = await eventually(
    'spread tasks to leave node-3',
    async () => {
      const live = await runningOf('spread', 6);
      return live && !live.some((x) => x.nodeName === 'node-3') ? live : undefined;
    },
    90_000,
  );
  t.deepEqual(perNode(tasks), { 'node-1': 3, 'node-2': 3 });
  await client.scale({ ref: { kind: 'Service', stack: 'mn', name: 'spread' }, replicas: 8 });
  const more = await eventually('8 running', () => runningOf('spread', 8), 60_000);
  t.false(
    more.some((x) => x.nodeName === 'node-3'),
    'a drained node takes no new tasks',
  );
  await client.updateNode({ name: 'node-3', availability: 'active', addLabels: {}, removeLabels: [] });
});

test.serial('a global service runs one task per node and gains one on a node that joins', async (t) => {
  await apply('everywhere', { mode: 'global' });
  const three = await eventually('3 global tasks', () => runningOf('everywhere', 3), 60_000);
  t.deepEqual(perNode(three), { 'node-1': 1, 'node-2': 1, 'node-3': 1 });
  const added = await addNetnsNode(cluster, clusterOptions);
  const four = await eventually('a 4th global task', () => runningOf('everywhere', 4), 60_000);
  t.is(four.filter((x) => x.nodeName === added.name).length, 1);
  await client.delete({ refs: [{ kind: 'Service', stack: 'mn', name: 'everywhere' }] });
  await client.updateNode({ name: added.name, availability: 'drain', addLabels: {}, removeLabels: [] });
});

test.serial('a worker whose tsd is killed and restarted takes its containers over', async (t) => {
  await apply('steady', { replicas: 2, placement: { constraints: ['node.hostname==node-3'] } });
  const before = await eventually('2 steady tasks on node-3', () => runningOf('steady', 2), 60_000);
  const node3 = cluster.nodes[2]!;
  process.kill(node3.pid, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 300));
  await restartNetnsNode(cluster, clusterOptions, node3);
  // Give the new tsd time to register and take over, then the tasks must be the same ones.
  await eventually(
    'node-3 to be ready again',
    async () => {
      const nodes = (await client.list({ kind: 'Node', allStacks: true })).objectsJson.map((j) => JSON.parse(j) as Node);
      return nodes.find((n) => n.metadata.name === 'node-3')?.status.state === 'ready' ? true : undefined;
    },
    30_000,
  );
  await new Promise((r) => setTimeout(r, 5000));
  const after = await eventually('the same 2 tasks running', () => runningOf('steady', 2), 10_000);
  t.deepEqual(after.map((x) => x.metadata.name).sort(), before.map((x) => x.metadata.name).sort(), 'no task was replaced');
  t.deepEqual(
    after.map((x) => x.status.pid ?? 0).sort((a, b) => a - b),
    before.map((x) => x.status.pid ?? 0).sort((a, b) => a - b),
    'the same containers run',
  );
  t.true(
    before.every(
      (x) =>
        x.status.pid !== undefined &&
        (() => {
          try {
            process.kill(x.status.pid!, 0);
            return true;
          } catch {
            return false;
          }
        })(),
    ),
  );
  // And the adopted containers still stop when asked.
  await client.delete({ refs: [{ kind: 'Service', stack: 'mn', name: 'steady' }] });
  await eventually(
    'the adopted containers to stop',
    async () => {
      const alive = before.filter((x) => {
        try {
          process.kill(x.status.pid!, 0);
          return true;
        } catch {
          return false;
        }
      });
      return alive.length === 0 ? true : undefined;
    },
    30_000,
  );
});

test.serial("killing a node's tsd gets its tasks rescheduled elsewhere", async (t) => {
  await client.scale({ ref: { kind: 'Service', stack: 'mn', name: 'spread' }, replicas: 3 });
  await apply('victim', { replicas: 3, placement: { constraints: ['node.role==worker'] } });
  const before = await eventually('3 victims running on workers', () => runningOf('victim', 3), 60_000);
  const onNode2 = before.filter((x) => x.nodeName === 'node-2').length;
  t.true(onNode2 > 0);
  // A talker on each of the three nodes, for tsctl logs across them.
  await apply('talker', {
    mode: 'global',
    placement: { constraints: ['node.hostname!=node-4'] },
    command: ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.2; done'],
  });
  const talkers = await eventually('a talker on each of 3 nodes', () => runningOf('talker', 3), 60_000);
  await new Promise((r) => setTimeout(r, 1000));
  const backlog: LogLine__Output[] = [];
  await client.logs({ stack: 'mn', service: 'talker', follow: false, tail: 3 }, (l) => backlog.push(l));
  t.deepEqual([...new Set(backlog.map((l) => l.node))].sort(), ['node-1', 'node-2', 'node-3'], 'lines from every node');
  t.deepEqual(
    backlog.map((l) => l.timeMs),
    backlog.map((l) => l.timeMs).sort((a, b) => a - b),
    'merged by time',
  );
  t.is(backlog.length, 9, 'the last 3 lines of each task');
  t.true(
    talkers.every((x) => backlog.some((l) => l.task === x.metadata.name && /^tick \d+$/.test(l.line))),
    'each task prefixed with its name',
  );
  const followedLogs: LogLine__Output[] = [];
  const followingLogs = new AbortController();
  const logsStream = client.logs({ stack: 'mn', service: 'talker', follow: true, tail: 1 }, (l) => followedLogs.push(l), followingLogs.signal);

  const node2 = cluster.nodes[1]!;
  // tsctl events -f, across the failure: the stream goes on while a node goes down.
  const seen: ClusterEventMessage__Output[] = [];
  const following = new AbortController();
  const streaming = client.events(
    { sinceMs: Date.now(), untilMs: 0, follow: true, filters: ['type=node', 'type=task'] },
    (e) => seen.push(e),
    following.signal,
  );
  process.kill(node2.pid, 'SIGKILL');
  const started = Date.now();
  const after = await eventually(
    'victims to run on node-3 only',
    async () => {
      const live = await runningOf('victim', 3);
      return live && live.every((x) => x.nodeName === 'node-3') ? live : undefined;
    },
    45_000,
  );
  t.log(`rescheduled ${onNode2} task(s) in ${Date.now() - started} ms (node-down-after ${clusterOptions.nodeDownAfterMs} ms)`);
  t.is(after.length, 3);
  const nodes = (await client.list({ kind: 'Node', allStacks: true })).objectsJson.map((j) => JSON.parse(j) as Node);
  t.is(nodes.find((n) => n.metadata.name === 'node-2')?.status.state, 'down');
  const orphaned = (await tasksOf('victim')).filter((x) => x.nodeName === 'node-2');
  t.true(orphaned.every((x) => x.status.state === 'orphaned'));

  const lines = () => seen.map((e) => `${e.type} ${e.action} ${e.name} ${JSON.stringify(e.attributes)}`).join('\n');
  await eventually(
    'the replacements running on node-3 in the event stream',
    async () => {
      const running = seen.filter(
        (e) => e.type === 'task' && e.action === 'running' && e.attributes['node'] === 'node-3' && e.attributes['service'] === 'victim',
      );
      return running.length >= onNode2 || undefined;
    },
    10_000,
  ).catch((err: Error) => t.fail(`${err.message}:\n${lines()}`));
  t.true(
    seen.some((e) => e.type === 'node' && e.action === 'down' && e.name === 'node-2' && e.attributes['from'] === 'ready'),
    lines(),
  );
  const orphanedEvents = new Set(seen.filter((e) => e.type === 'task' && e.action === 'orphaned' && e.attributes['node'] === 'node-2').map((e) => e.name));
  for (const victim of before.filter((x) => x.nodeName === 'node-2'))
    t.true(orphanedEvents.has(victim.metadata.name), `${victim.metadata.name} orphaned:\n${lines()}`);
  t.true(
    seen.every((e) => e.type === 'node' || e.type === 'task'),
    'only the types asked for',
  );
  following.abort();
  await streaming;
  // tsctl logs -f across the failure: a notice for node-2, and the other nodes' lines go on.
  t.true(
    followedLogs.some((l) => /^node node-2: .*its tasks' lines follow when it is back$/.test(l.notice)),
    followedLogs.map((l) => l.notice).join('\n'),
  );
  for (const other of ['node-1', 'node-3'])
    await eventually(
      `${other}'s talker to go on in the followed logs`,
      async () => followedLogs.some((l) => l.node === other && l.timeMs > started) || undefined,
      10_000,
    );
  followingLogs.abort();
  await logsStream;
  // Asked afterwards, without follow: the same node event, from the manager's record.
  const past: ClusterEventMessage__Output[] = [];
  await client.events({ sinceMs: started - 1000, untilMs: 0, follow: false, filters: ['type=node', 'name=node-2'] }, (e) => past.push(e));
  t.deepEqual(
    past.filter((e) => !e.notice).map((e) => `${e.type} ${e.action} ${e.name}`),
    ['node down node-2'],
  );
});
