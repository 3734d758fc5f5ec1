// tsctl follows the cluster (issue 20), on a 3-manager cluster built by `tsctl cluster up --nodes 3
// --managers 3` (the built binary, as a user runs it): the context lists the three managers; the
// leader is killed (SIGKILL, via `tsctl cluster node kill`) while `tsctl get tasks -w` runs on it,
// and the watch goes on at another manager without losing a change; a `tsctl get services` right
// after the kill answers (its time is logged; the 1.5 s goal is measured by npm run bench:failover,
// not asserted here); `tsctl cluster node start` brings the killed manager back and it rejoins; a context that
// knows only a removed manager gets one line saying what to do. `cluster down` removes it all.
// Own prefix, underlay octet, data root and context file keep it apart from other tests
// (test/helpers/tsctl-cluster.ts, shared with logs-failover.test.ts and the benchmark).
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { ApiClient } from '../../cli/client.js';
import type { CliContext } from '../../cli/context.js';
import type { Service, Task } from '../../common/resources/types.js';
import type { NetnsClusterState } from '../../cli/local-cluster/netns-cluster.js';
import { eventually } from '../helpers/eventually.js';
import { LOCAL_INSECURE } from '../../common/transport/credentials.js';
import { collectLines, parseMembers, TSCTL, TsctlCluster } from '../helpers/tsctl-cluster.js';

let cluster: TsctlCluster;
let watcher: ChildProcess | undefined;

const tsctl = (args: string[], context?: string) => cluster.tsctl(args, context);
const readCtx = () => cluster.readContext();
const env = () => cluster.env();

test.before(async () => {
  cluster = await TsctlCluster.prepare('v');
});

test.after.always(async () => {
  // Only the watcher this test started, by its PID.
  if (watcher?.pid !== undefined && watcher.exitCode === null) process.kill(watcher.pid, 'SIGTERM');
  if ((cluster as TsctlCluster | undefined) !== undefined) await cluster.destroy();
});

function stateOf(context: CliContext | undefined): NetnsClusterState {
  if (!context?.netns) throw new Error('no netns cluster in the context');
  return context.netns;
}

test.serial('cluster up --managers 3 writes a context listing every manager, with the tsd start times', async (t) => {
  const up = await cluster.up(3, 3);
  t.is(up.code, 0, up.stderr);
  const context = await readCtx();
  const state = stateOf(context);
  t.deepEqual(
    context!.servers,
    state.nodes.map((n) => n.apiSocket),
  );
  for (const node of state.nodes) t.true(typeof node.startTime === 'number' && node.startTime > 0, `${node.name}'s start time is recorded`);
});

test.serial(
  'kill -9 of each manager in turn, the leader first: a running get tasks -w goes on without a lost change, get services and scale answer, the manager restarts and rejoins',
  async (t) => {
    const state = stateOf(await readCtx());
    const leaderName = (await cluster.leader()).name;
    const leader = state.nodes.find((n) => n.name === leaderName)!;
    // The watch runs on the leader: the context names it first.
    await cluster.askFirst(leader);

    // Changes keep coming: tasks of an image no registry serves are rejected and replaced.
    const sockets = state.nodes.flatMap((n) => (n.apiSocket ? [n.apiSocket] : []));
    const client = new ApiClient(sockets[0]!, { timeoutMs: 10_000, failover: { addresses: sockets.slice(1), securityFor: () => LOCAL_INSECURE } });
    t.teardown(() => client.close());
    const service: Service = {
      apiVersion: 'tessera/v1',
      kind: 'Service',
      metadata: { name: 'churn', stack: 'fo' },
      spec: { image: `172.31.${cluster.octet}.254:1/none/churn:1`, replicas: 2 },
    } as Service;

    watcher = spawn(TSCTL, ['get', 'tasks', '-w'], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    const output = collectLines(watcher);
    const lines = output.lines;
    const changeLines = () => lines.filter((l) => /^(added|modified|deleted)\s/.test(l));
    await eventually('the watch to print its table', async () => lines.some((l) => l.startsWith('NAME') || l.includes('No ')) || lines.length > 0, 30_000);
    await client.apply({ objectsJson: [JSON.stringify(service)] });
    await eventually(
      () => `changes before the kill (seen: ${lines.join(' | ')}; stderr ${output.stderr()})`,
      async () => changeLines().length >= 2,
      30_000,
    );

    // Each manager in turn, the leader first: killed, the cluster used through tsctl (a read, a
    // write that is safe to repeat), started again and back among the voters before the next.
    const order = [leader, ...state.nodes.filter((n) => n !== leader && n.role === 'manager')];
    let afterFirstKill = 0;
    for (const [round, victim] of order.entries()) {
      const kill = await tsctl(['cluster', 'node', 'kill', victim.name]);
      t.is(kill.code, 0, kill.stderr);
      const killedAt = Date.now();
      const get = await tsctl(['get', 'services']);
      const tookMs = Date.now() - killedAt;
      t.is(get.code, 0, get.stderr);
      t.regex(get.stdout, /churn/);
      t.log(
        `tsctl get services answered ${tookMs} ms after kill -9 of ${victim.name}${victim === leader ? ' (the leader)' : ''} (goal 1.5 s: for a benchmark, not asserted)`,
      );
      if (round === 0) afterFirstKill = changeLines().length;
      const before = changeLines().length;
      const scale = await tsctl(['scale', `churn=${3 + round}`, '--stack', 'fo']);
      t.is(scale.code, 0, scale.stderr);
      await eventually(
        () => `changes after the kill of ${victim.name} (stderr: ${output.stderr()})`,
        async () => changeLines().length > before,
        60_000,
      );
      t.is(watcher.exitCode, null, `the watch still runs (stderr: ${output.stderr()})`);

      const start = await tsctl(['cluster', 'node', 'start', victim.name]);
      t.is(start.code, 0, start.stderr);
      const rejoined = await eventually(
        `${victim.name} back among the voting managers`,
        async () => {
          const rows = parseMembers((await tsctl(['cluster', 'members'])).stdout);
          return rows.some((r) => r.id === victim.name && (r.role === 'follower' || r.role === 'leader')) ? rows : undefined;
        },
        90_000,
      );
      t.log(`members after ${victim.name} restarted: ${rejoined.map((r) => `${r.id} ${r.role}`).join(', ')}`);
    }

    // Then every task the cluster has must have its last change in the watch's output.
    const scaleDown = await tsctl(['scale', 'churn=0', '--stack', 'fo']);
    t.is(scaleDown.code, 0, scaleDown.stderr);
    await eventually(
      () => `the watch to show every task's final state (last lines: ${changeLines().slice(-5).join(' | ')})`,
      async () => {
        const tasks = (await client.list({ kind: 'Task', allStacks: true })).objectsJson.map((j) => JSON.parse(j) as Task);
        const last = new Map<string, string>();
        for (const line of changeLines()) {
          const [type, ref, state] = line.split(/\s+/);
          last.set(ref!.replace(/^task\//, ''), type === 'deleted' ? 'deleted' : (state ?? ''));
        }
        const behind = tasks.filter((task) => last.get(`${task.metadata.stack ?? ''}/${task.metadata.name}`.replace(/^\//, '')) !== task.status.state);
        return behind.length === 0 ? true : undefined;
      },
      60_000,
      1000,
    );
    t.pass('the watch holds the last change of every task, including those after each kill');
    t.log(
      `the watch printed ${changeLines().length} changes, ${changeLines().length - afterFirstKill} after the first kill; stderr: ${output.stderr().trim() || '(none)'}`,
    );
    process.kill(watcher.pid!, 'SIGTERM');
  },
);

test.serial('a context that knows only a removed manager gets one line saying what to do', async (t) => {
  const state = stateOf(await readCtx());
  const members = await cluster.members();
  const follower = state.nodes.find((n) => members.some((m) => m.id === n.name && m.role === 'follower'))!;
  t.is((await tsctl(['cluster', 'node', 'stop', follower.name])).code, 0);
  const removed = await tsctl(['cluster', 'members', 'remove', follower.name]);
  t.is(removed.code, 0, removed.stderr);
  const stale = join(cluster.workDir, 'stale.json');
  await writeFile(stale, JSON.stringify({ server: follower.apiSocket, servers: [follower.apiSocket] }), { mode: 0o600 });
  const get = await tsctl(['get', 'services'], stale);
  t.not(get.code, 0);
  const errorLines = get.stderr.trim().split('\n');
  t.is(errorLines.length, 1, get.stderr);
  t.regex(
    get.stderr,
    new RegExp(
      `no manager answered: ${follower.apiSocket!.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\((no socket|connection refused)\\) — check \`tsctl cluster members\` from a manager host or pass --server`,
    ),
  );
});

test.serial('cluster down cleans up, whatever state the nodes are in', async (t) => {
  const down = await tsctl(['cluster', 'down']);
  t.is(down.code, 0, down.stderr);
  t.is(await readCtx(), undefined);
});
