// Managers over the Raft store, with real tsd processes, each node in a network namespace of its
// own on a private underlay (test/helpers/managers-lab.ts, running dist/; nothing in the host's
// namespace): a single tsd keeps every object across kill -9; three managers (init + two `tsd join`
// with the manager token) show in `tsctl cluster members`, survive kill -9 of the leader, and a
// manager can be removed. And a netns cluster of 3 managers and a worker (createNetnsCluster with
// managers: 3, the code of `tsctl cluster up --managers 3`): kill -9 of the manager the worker is
// connected to; the worker reconnects to another one and keeps its container.
import test from 'ava';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

import { ApiClient } from '../../cli/client.js';
import type { Node, Service, Task } from '../../common/resources/types.js';
import { saveClusterLogs } from '../helpers/cluster-logs.js';
import { createNetnsCluster, destroyNetnsCluster, type ClusterNodeState, type NetnsClusterState } from '../../cli/local-cluster/netns-cluster.js';
import { startUnderlayRegistry, type UnderlayRegistry } from '../helpers/underlay-registry.js';
import { eventually } from '../helpers/eventually.js';
import { makeLab, type LabNode } from '../helpers/managers-lab.js';

const run = promisify(execFile);
const TSCTL = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

interface MemberRow {
  id: string;
  role: string;
  term: number;
  commit: number;
  applied: number;
}

function parseMembers(out: string): MemberRow[] {
  return out
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => {
      const [id, , role, term, commit, applied] = line.split(/\s+/);
      return { id: id!, role: role!, term: Number(term), commit: Number(commit), applied: Number(applied) };
    });
}

test('a single tsd on the raft store keeps every object across kill -9', async (t) => {
  const lab = await makeLab({ count: 1, from: 'dist' });
  t.teardown(() => lab.destroy());
  const n = lab.nodes[0]!;
  await lab.start(n, ['init']);
  await eventually('tsd to be ready', async () => ((await lab.tsctl(n, 'get', 'nodes', '-o', 'json')).includes('"ready"') ? true : undefined), 60_000);
  await lab.tsctl(n, 'node', 'label', 'mgr-1', 'kept=across-kill-9');
  const before = JSON.parse(await lab.tsctl(n, 'get', 'nodes', '-o', 'json')) as unknown[];
  await lab.kill9(n);
  await lab.start(n, ['init']);
  const after = await eventually(
    'tsd to be back',
    async () => {
      const out = await lab.tsctl(n, 'get', 'nodes', '-o', 'json');
      return out.includes('"ready"') ? (JSON.parse(out) as unknown[]) : undefined;
    },
    60_000,
  );
  t.is(after.length, before.length, 'the node is registered once (upsert), not twice');
  t.true(JSON.stringify(after).includes('across-kill-9'), 'the label written before kill -9 is still there');
  const members = parseMembers(await lab.tsctl(n, 'cluster', 'members'));
  t.deepEqual(
    members.map((m) => [m.id, m.role]),
    [['mgr-1', 'leader']],
  );
});

test('three managers: join with the manager token, members listed, leader kill -9 fails over, removal', async (t) => {
  const lab = await makeLab({ count: 3, from: 'dist' });
  t.teardown(() => lab.destroy());
  const [m1, m2, m3] = lab.nodes as [LabNode, LabNode, LabNode];
  await lab.start(m1, ['init']);
  await eventually('the first manager', async () => ((await lab.tsctl(m1, 'get', 'nodes', '-o', 'json')).includes('"ready"') ? true : undefined), 60_000);
  const token = (await lab.tsctl(m1, 'cluster', 'join-token', 'manager'))
    .trim()
    .split(/\s+/)
    .find((w) => w.startsWith('TSJT-'))!;
  t.truthy(token, 'a manager token');
  for (const m of [m2, m3]) {
    // Through a 0600 file, never argv; the test removes it once the node is in.
    const tokenFile = join(m.dataRoot, 'join-token');
    await writeFile(tokenFile, token, { mode: 0o600 });
    await lab.start(m, ['join', '--token-file', tokenFile, `${m1.address}:7420`]);
    await eventually(
      `${m.name} to be a voter`,
      async () => {
        const rows = parseMembers(await lab.tsctl(m1, 'cluster', 'members'));
        return rows.find((r) => r.id === m.name && r.role === 'follower') ? true : undefined;
      },
      90_000,
    ).catch(async (err: Error) => {
      t.log(await lab.log(m));
      throw err;
    });
    await rm(tokenFile, { force: true });
  }
  const rows = parseMembers(await lab.tsctl(m2, 'cluster', 'members'));
  t.log(await lab.tsctl(m2, 'cluster', 'members'));
  t.deepEqual(rows.map((r) => r.role).sort(), ['follower', 'follower', 'leader']);
  t.true(rows.every((r) => r.applied > 0 && r.commit >= r.applied && r.term > 0));

  const leader = lab.nodes.find((n) => n.name === rows.find((r) => r.role === 'leader')!.id)!;
  const survivors = lab.nodes.filter((n) => n !== leader);
  const killedAt = Date.now();
  await lab.kill9(leader);
  const newLeader = await eventually(
    'a new leader',
    async () => {
      const r = parseMembers(await lab.tsctl(survivors[0]!, 'cluster', 'members'));
      const l = r.find((x) => x.role === 'leader');
      return l && l.id !== leader.name ? l.id : undefined;
    },
    30_000,
  );
  t.log(`new leader ${newLeader} ${Date.now() - killedAt} ms after kill -9 of ${leader.name}`);
  // Writes go on through any survivor (a follower forwards them).
  await eventually(
    'a write after fail-over',
    async () => {
      // tsctl throws while no leader takes the write; eventually retries that.
      await lab.tsctl(survivors[1]!, 'node', 'label', survivors[1]!.name, 'after=failover');
      return true;
    },
    30_000,
  );

  await lab.start(leader, ['init']);
  await eventually(
    `${leader.name} to rejoin as follower`,
    async () => {
      const r = parseMembers(await lab.tsctl(survivors[0]!, 'cluster', 'members'));
      return r.find((x) => x.id === leader.name && x.role === 'follower') ? true : undefined;
    },
    60_000,
  );

  const removed = survivors.find((n) => n.name !== newLeader)!;
  const out = await lab.tsctl(
    survivors.find((n) => n.name === newLeader)!,
    'cluster',
    'members',
    'remove',
    removed.name,
  );
  t.regex(out, /removed/);
  const after = await eventually(
    'two members',
    async () => {
      const r = parseMembers(await lab.tsctl(leader, 'cluster', 'members'));
      return r.length === 2 ? r : undefined;
    },
    30_000,
  );
  t.false(after.some((r) => r.id === removed.name));

  // Both members down: the first restarted waits for a leader (no majority alone) rather than
  // failing its start, and the two serve again once the other is back (as systemd restarts them).
  const pair = lab.nodes.filter((n) => n !== removed) as [LabNode, LabNode];
  for (const n of pair) await lab.kill9(n);
  await lab.start(pair[0], ['init']);
  await sleep(15_000);
  t.true(pair[0].pid > 0 && alive(pair[0].pid), `${pair[0].name} still waits 15 s on, alone`);
  t.regex(await lab.log(pair[0]), /waiting for a Raft leader \(a majority of the managers must be up\)/);
  await lab.start(pair[1], ['init']);
  await eventually(
    'the pair to elect a leader and serve',
    async () => (parseMembers(await lab.tsctl(pair[0], 'cluster', 'members')).some((r) => r.role === 'leader') ? true : undefined),
    90_000,
  );
});

/** The underlay address of the manager whose dispatcher port this node has an established TCP connection to. */
async function connectedManager(cluster: NetnsClusterState, node: ClusterNodeState): Promise<ClusterNodeState | undefined> {
  const { stdout } = await run('nsenter', [`--net=/run/netns/${node.netns}`, 'ss', '-Htn', 'state', 'established', '( dport = :7420 )']);
  const peers = stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) =>
      line
        .trim()
        .split(/\s+/)
        .at(-1)!
        .replace(/:7420$/, ''),
    );
  const managers = cluster.nodes.filter((n) => n.role === 'manager' && peers.includes(n.underlayAddress));
  return managers.length === 1 ? managers[0] : undefined;
}

function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test.serial('a worker whose manager is killed reconnects to another manager and keeps its container', async (t) => {
  const workDir = await mkdtemp(join(tmpdir(), 'tessera-mfo-'));
  const octet = 100 + Math.floor(Math.random() * 100);
  const prefix = `mf${randomBytes(3).toString('hex')}`;
  let cluster: NetnsClusterState | undefined;
  let registry: UnderlayRegistry | undefined;
  const clients: ApiClient[] = [];
  t.teardown(async () => {
    for (const c of clients) c.close();
    const keep = process.env.TESSERA_TEST_KEEP_LOG_DIR;
    if (keep && cluster) await saveClusterLogs(cluster, keep);
    if (cluster) await destroyNetnsCluster(cluster);
    registry?.stop();
    await rm(workDir, { recursive: true, force: true });
  });
  cluster = await createNetnsCluster({
    prefix,
    nodes: 4,
    managers: 3,
    baseDir: join(workDir, 'cluster'),
    underlayOctet: octet,
    hostBridge: false,
    heartbeatMs: 300,
    nodeDownAfterMs: 6000,
    insecureRegistries: [`172.31.${octet}.254:5000`],
  });
  t.deepEqual(
    cluster.nodes.map((n) => n.role),
    ['manager', 'manager', 'manager', 'worker'],
  );
  // `tsctl cluster up --managers 3` builds this: three voters.
  const { stdout: membersOut } = await run(process.execPath, [TSCTL, '--server', cluster.apiSocket, 'cluster', 'members'], { timeout: 30_000 });
  const voters = parseMembers(membersOut);
  t.deepEqual(voters.map((m) => m.id).sort(), ['node-1', 'node-2', 'node-3']);
  t.deepEqual(voters.map((m) => m.role).sort(), ['follower', 'follower', 'leader']);
  registry = await startUnderlayRegistry(cluster, octet, workDir);
  const worker = cluster.nodes[3]!;
  const apiOf = (n: ClusterNodeState): ApiClient => {
    const c = new ApiClient(n.apiSocket!, 10_000);
    clients.push(c);
    return c;
  };
  const tasksOn = async (client: ApiClient, service: string): Promise<Task[]> =>
    (await client.list({ kind: 'Task', stack: 'fo', service })).objectsJson.map((j) => JSON.parse(j) as Task);
  const runningOn = (client: ApiClient, service: string) => async () => {
    const live = (await tasksOn(client, service)).filter((x) => x.desiredState === 'running' && x.status.state === 'running');
    return live.length === 1 ? live[0] : undefined;
  };
  const pinned = (name: string): Service => ({
    apiVersion: 'tessera/v1',
    kind: 'Service',
    metadata: { name, stack: 'fo' },
    spec: {
      image: registry!.image,
      command: ['sleep', '100000'],
      replicas: 1,
      stopGracePeriodMs: 300,
      placement: { constraints: [`node.hostname==${worker.name}`] },
    },
  });

  const first = apiOf(cluster.nodes[0]!);
  await first.apply({ objectsJson: [JSON.stringify(pinned('keeper'))] });
  const before = await eventually('keeper running on the worker', runningOn(first, 'keeper'), 90_000);
  t.is(before.nodeName, worker.name);
  t.true(alive(before.status.pid), 'the container runs');

  const victim = await eventually("the worker's session", () => connectedManager(cluster!, worker), 10_000);
  const killedAt = Date.now();
  process.kill(victim.pid, 'SIGKILL');
  const survivor = cluster.nodes.find((n) => n.role === 'manager' && n !== victim)!;
  const api = apiOf(survivor);
  const next = await eventually(
    'the worker to reconnect to another manager',
    async () => {
      const m = await connectedManager(cluster!, worker);
      return m && m !== victim ? m : undefined;
    },
    30_000,
  );
  t.log(`worker reconnected from ${victim.name} to ${next.name} ${Date.now() - killedAt} ms after kill -9`);

  // Past the node-down timeout: the node stays ready and the task is the same one, same container.
  await sleep(6500);
  const nodes = (await api.list({ kind: 'Node', allStacks: true })).objectsJson.map((j) => JSON.parse(j) as Node);
  t.is(nodes.find((n) => n.metadata.name === worker.name)?.status.state, 'ready');
  const after = await eventually('keeper still running', runningOn(api, 'keeper'), 10_000);
  t.is(after.metadata.name, before.metadata.name, 'no replacement task');
  t.is(after.status.containerId, before.status.containerId, 'the same container');
  t.is(after.status.pid, before.status.pid, 'the same process');
  t.true(alive(before.status.pid), 'the container was never restarted');

  // The new session carries assignments: a new task is scheduled on the worker and runs.
  await api.apply({ objectsJson: [JSON.stringify(pinned('newcomer'))] });
  const newcomer = await eventually('a new task running on the worker', runningOn(api, 'newcomer'), 60_000);
  t.is(newcomer.nodeName, worker.name);

  // tsctl logs on every surviving manager, followers included (they forward to the leader, which holds the sessions).
  const talker = pinned('talker');
  talker.spec.command = ['sh', '-c', 'echo "hello from the worker"; exec sleep 100000'];
  await api.apply({ objectsJson: [JSON.stringify(talker)] });
  await eventually('the talker running', runningOn(api, 'talker'), 60_000);
  for (const manager of cluster.nodes.filter((n) => n.role === 'manager' && n !== victim)) {
    const lines = await eventually(
      `the worker's line through ${manager.name}`,
      async () => {
        const got: string[] = [];
        await apiOf(manager).logs({ stack: 'fo', service: 'talker', follow: false, tail: 0 }, (l) => got.push(l.notice || `${l.node}: ${l.line}`));
        return got.includes(`${worker.name}: hello from the worker`) ? got : undefined;
      },
      15_000,
    );
    t.deepEqual(lines, [`${worker.name}: hello from the worker`], `through ${manager.name}`);
  }
});
