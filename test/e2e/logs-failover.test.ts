// `tsctl logs -f` and `tsctl events -f` go on across kill -9 of the manager they stream from
// (issue 20), on a 3-manager cluster built by the built tsctl (`cluster up --nodes 3 --managers 3`,
// test/helpers/tsctl-cluster.ts), the busybox image loaded with `tsctl image load` on the node that
// runs the task. A task on a follower prints numbered lines; both streams run against the leader (the context names it
// first); the leader's tsd is killed (SIGKILL, `tsctl cluster node kill`): the log stream resumes
// at another manager from each line's sequence number and prints every number exactly once, in
// order, including those written after the kill; the events stream resumes after the last event's
// revision and place, with no event twice and new events after the kill.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { Service } from '../../common/resources/types.js';
import { eventually } from '../helpers/eventually.js';
import { buildBusyboxImage } from '../helpers/busybox-image.js';
import { collectLines, TSCTL, TsctlCluster, type CollectedOutput } from '../helpers/tsctl-cluster.js';

let cluster: TsctlCluster;
const children: ChildProcess[] = [];

test.before(async () => {
  cluster = await TsctlCluster.prepare('l');
});

test.after.always(async () => {
  // Only the processes this test started, by their PIDs.
  for (const child of children) if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGTERM');
  if ((cluster as TsctlCluster | undefined) !== undefined) await cluster.destroy();
});

function follow(args: string[]): { child: ChildProcess; output: CollectedOutput } {
  const child = spawn(TSCTL, args, { env: cluster.env(), stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return { child, output: collectLines(child) };
}

/** The numbers of `n K` lines, in the order printed. */
function numbers(lines: string[]): number[] {
  return lines.flatMap((l) => {
    const m = /^n (\d+)$/.exec(l);
    return m ? [Number(m[1])] : [];
  });
}

test.serial('logs -f and events -f go on across kill -9 of the leader they stream from: every line once, in order; no event twice', async (t) => {
  const up = await cluster.up(3, 3);
  t.is(up.code, 0, up.stderr);
  const state = await cluster.state();
  const leader = await cluster.leader();
  const writer = state.nodes.find((n) => n.name !== leader.name)!;
  const busybox = await buildBusyboxImage(join(cluster.workDir, 'busybox'));
  const loaded = await cluster.tsctl(['--server', writer.apiSocket!, 'image', 'load', busybox.tarballPath]);
  t.is(loaded.code, 0, loaded.stderr);

  const counter: Service = {
    apiVersion: 'tessera/v1',
    kind: 'Service',
    metadata: { name: 'counter', stack: 'lf' },
    spec: {
      image: 'busybox',
      command: ['sh', '-c', 'i=0; while :; do i=$((i+1)); echo "n $i"; sleep 0.02; done'],
      placement: { constraints: [`node.hostname==${writer.name}`] },
    },
  } as Service;
  await writeFile(join(cluster.workDir, 'counter.json'), JSON.stringify(counter));
  const applied = await cluster.tsctl(['apply', '-f', join(cluster.workDir, 'counter.json')]);
  t.is(applied.code, 0, applied.stderr);
  await cluster.askFirst(leader); // apply wrote the manager that answered first; the streams are to start at the leader

  const events = follow(['events', '-f', '--filter', 'stack=lf', '-o', 'json']);
  const logs = follow(['logs', '-f', 'counter', '--stack', 'lf', '--no-prefix']);
  await eventually(
    () => `numbered lines before the kill (stderr: ${logs.output.stderr()})`,
    async () => numbers(logs.output.lines).length >= 50,
    120_000,
  );

  const kill = await cluster.tsctl(['cluster', 'node', 'kill', leader.name]);
  t.is(kill.code, 0, kill.stderr);
  const atKill = Math.max(0, ...numbers(logs.output.lines));
  t.log(`killed ${leader.name} (the leader) at line ${atKill}; the task runs on ${writer.name}`);

  // Changes after the kill, for the events stream: a second service in the same stack.
  const other: Service = {
    ...counter,
    metadata: { name: 'other', stack: 'lf' },
    spec: { image: 'busybox', command: ['sleep', '100000'], placement: { constraints: [`node.hostname==${writer.name}`] } },
  } as Service;
  await writeFile(join(cluster.workDir, 'other.json'), JSON.stringify(other));
  const second = await cluster.tsctl(['apply', '-f', join(cluster.workDir, 'other.json')]);
  t.is(second.code, 0, second.stderr);

  await eventually(
    () => `lines well after the kill (last: ${numbers(logs.output.lines).slice(-3).join(', ')}; stderr: ${logs.output.stderr()})`,
    async () => Math.max(0, ...numbers(logs.output.lines)) >= atKill + 200,
    120_000,
  );
  await eventually(
    () => `events of the service applied after the kill (stderr: ${events.output.stderr()})`,
    async () => events.output.lines.some((l) => l.includes('"name":"other')),
    60_000,
  );
  t.is(logs.child.exitCode, null, `logs -f still runs (stderr: ${logs.output.stderr()})`);
  t.is(events.child.exitCode, null, `events -f still runs (stderr: ${events.output.stderr()})`);
  process.kill(logs.child.pid!, 'SIGINT');
  process.kill(events.child.pid!, 'SIGINT');

  const seen = numbers(logs.output.lines);
  const expected = Array.from({ length: seen.length }, (_, i) => i + 1);
  t.deepEqual(seen, expected, 'every number from 1, exactly once, in order');
  t.true(seen.length >= atKill + 200, 'lines written after the kill came through');

  const printed = events.output.lines
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { revision: number; index: number; name: string; action: string });
  const positions = printed.map((e) => `${e.revision}/${e.index}`);
  t.is(new Set(positions).size, positions.length, `no event twice: ${positions.join(' ')}`);
  const ordered = printed.every(
    (e, i) => i === 0 || e.revision > printed[i - 1]!.revision || (e.revision === printed[i - 1]!.revision && e.index > printed[i - 1]!.index),
  );
  t.true(ordered, 'events in store order');
  t.log(
    `logs -f printed ${seen.length} lines, ${seen.length - atKill} after the kill; events -f printed ${printed.length} events; logs stderr: ${logs.output.stderr().trim() || '(none)'}; events stderr: ${events.output.stderr().trim() || '(none)'}`,
  );
});

test.serial('cluster down cleans up', async (t) => {
  const down = await cluster.tsctl(['cluster', 'down']);
  t.is(down.code, 0, down.stderr);
});
