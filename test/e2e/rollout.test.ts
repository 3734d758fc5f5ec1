// Rolling updates end to end on one real node: tsd in a network namespace of the test's own, real
// containers from a busybox image the test builds. The store is followed through the API's Watch,
// event by event, so "never fewer than the desired running tasks" is checked at every revision,
// not at a few polled moments. Serial: each step builds on the last.
import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { Service, Task } from '../../common/resources/types.js';
import { ApiClient } from '../../cli/client.js';
import { watchServiceTasks } from '../helpers/task-watch.js';
import { eventually } from '../helpers/eventually.js';
import type { TestNode } from '../helpers/tsd-node.js';
import { startBusyboxNode, stopBusyboxNode } from '../helpers/busybox-node.js';

let node: TestNode;
let workDir: string;
let imageRef: string;
let api: ApiClient;

const REPLICAS = 3;

function manifest(version: string, command: string, update: string): string {
  return `apiVersion: tessera/v1
kind: Service
metadata:
  name: roll
  stack: e2e
spec:
  image: ${imageRef}
  command: ["sh", "-c", ${JSON.stringify(command)}]
  env:
    VERSION: "${version}"
  replicas: ${REPLICAS}
  stopGracePeriodMs: 1000
  updateConfig: ${update}
`;
}

async function applyManifest(text: string): Promise<string> {
  const path = join(workDir, 'roll.yaml');
  await writeFile(path, text);
  return node.tsctl('apply', '--detach', '-f', path);
}

async function tasks(): Promise<Task[]> {
  const res = await api.list({ kind: 'Task', stack: 'e2e', service: 'roll' });
  return res.objectsJson.map((j) => JSON.parse(j) as Task);
}

async function serviceNow(): Promise<Service> {
  const res = await api.list({ kind: 'Service', stack: 'e2e' });
  return res.objectsJson.map((j) => JSON.parse(j) as Service).find((s) => s.metadata.name === 'roll')!;
}

const isRunning = (t: Task) => t.desiredState === 'running' && t.status.state === 'running';
const versionOf = (t: Task) => t.spec.spec.env?.['VERSION'];

/**
 * Follows every change to the service's tasks from the current revision on, and records the
 * fewest running tasks and the most tasks of `version` that were live but not running yet.
 */
async function followTasks(version: string): Promise<{ lowRunning: () => number; mostStarting: () => number; stop: () => void }> {
  let low = Infinity;
  let most = 0;
  const watch = await watchServiceTasks(node.server, api, { stack: 'e2e', service: 'roll' }, (all) => {
    low = Math.min(low, all.filter(isRunning).length);
    most = Math.max(
      most,
      all.filter(
        (t) =>
          versionOf(t) === version &&
          t.desiredState === 'running' &&
          !['running', 'complete', 'failed', 'shutdown', 'rejected', 'orphaned'].includes(t.status.state),
      ).length,
    );
  });
  return {
    lowRunning: () => (watch.broken() ? -1 : low),
    mostStarting: () => most,
    stop: () => watch.stop(),
  };
}

test.before(async () => {
  ({ node, workDir, imageRef } = await startBusyboxNode('tessera-e2e-rollout-'));
  api = new ApiClient(node.server);
});

test.after.always(async () => {
  // before() may have failed before assigning it: the declared type does not hold here.
  (api as ApiClient | undefined)?.close();
  await stopBusyboxNode(node, workDir);
});

const SERVE = 'exec sleep 100000';
const START_FIRST = '{parallelism: 1, order: start-first, monitorMs: 1000, failureAction: rollback}';

test.serial('start-first, parallelism 1: every task is replaced one by one, never fewer than the desired running', async (t) => {
  await applyManifest(manifest('1', SERVE, START_FIRST));
  await eventually('3 running tasks', async () => ((await tasks()).filter(isRunning).length === REPLICAS ? true : undefined), 60_000);
  const before = (await tasks()).filter(isRunning).map((x) => x.metadata.name);

  const follow = await followTasks('2');
  try {
    t.regex(await applyManifest(manifest('2', SERVE, START_FIRST)), /service\/e2e\/roll configured/);
    const status = await node.tsctl('rollout', 'status', 'e2e/roll', '--timeout', '120s');
    t.regex(status, /completed: 3 of 3 tasks on the current spec/);
    t.is(follow.lowRunning(), REPLICAS, 'at no store revision were fewer than 3 tasks running');
    t.is(follow.mostStarting(), 1, 'one new task at a time');
  } finally {
    follow.stop();
  }
  const after = (await tasks()).filter(isRunning);
  t.is(after.length, REPLICAS);
  t.true(after.every((x) => versionOf(x) === '2'));
  t.false(
    after.some((x) => before.includes(x.metadata.name)),
    'every task was replaced',
  );

  const history = await node.tsctl('rollout', 'history', 'e2e/roll');
  t.regex(history, /^1\s+\S+\s+\S+\s+create\s+created$/m);
  t.regex(history, /^2\s+\S+\s+\S+\s+update\s+env changed$/m);
});

test.serial('an update to a command that exits 1 at once rolls back by itself and ends with the old spec running', async (t) => {
  await applyManifest(manifest('3', 'exit 1', START_FIRST));
  const err = await t.throwsAsync(node.tsctl('rollout', 'status', 'e2e/roll', '--timeout', '120s'));
  t.regex(
    err!.message,
    /rollback completed: 3 of 3 tasks on the current spec \(rollback completed \(the update failed: task e2e_roll\.\d\.\w+ failed within the monitor period/,
  );
  const service = await serviceNow();
  t.is(service.spec.env?.['VERSION'], '2', 'the spec itself went back');
  t.deepEqual(service.spec.command, ['sh', '-c', SERVE]);
  t.is(service.status?.update?.state, 'rollback_completed');
  const running = await eventually(
    '3 running v2 tasks',
    async () => {
      const r = (await tasks()).filter(isRunning);
      return r.length === REPLICAS && r.every((x) => versionOf(x) === '2') ? r : undefined;
    },
    30_000,
  );
  t.is(running.length, REPLICAS);
  t.regex(await node.tsctl('rollout', 'history', 'e2e/roll'), /^4\s+.*rollback\s+automatic rollback: command, env changed$/m);
});

test.serial('rollout undo goes back to the previous spec as a rollback', async (t) => {
  // The previous spec is now the failed one; undo it from a fresh, good update instead.
  await applyManifest(manifest('5', SERVE, '{parallelism: 0, order: start-first, monitorMs: 500}'));
  t.regex(await node.tsctl('rollout', 'status', 'e2e/roll', '--timeout', '120s'), /completed/);
  t.regex(await node.tsctl('rollout', 'undo', 'e2e/roll'), /rolling back to the previous spec/);
  t.regex(await node.tsctl('rollout', 'status', 'e2e/roll', '--timeout', '120s'), /rollback completed: 3 of 3/);
  const service = await serviceNow();
  t.is(service.spec.env?.['VERSION'], '2');
  t.is(service.status?.previousSpec?.env?.['VERSION'], '5');
});
