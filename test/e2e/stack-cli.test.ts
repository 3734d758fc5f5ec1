// The stack commands end to end on one real tsd (in a network namespace of the test's own), with
// real containers from the busybox image the test builds: `stack deploy` follows its services until
// they converge (or names the one that cannot), `stack ls|services|ps` show the stack, and
// `stack rm` leaves no task, container process or container directory behind. One tsd for the
// whole file; serial, because each step builds on the last.
import test from 'ava';
import { readdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Task } from '../../common/resources/types.js';
import { ApiClient } from '../../cli/client.js';
import { eventually } from '../helpers/eventually.js';
import { listCgroups, type TestNode } from '../helpers/tsd-node.js';
import { startBusyboxNode, stopBusyboxNode } from '../helpers/busybox-node.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'compose-stack-cli');
const COMPOSE = join(FIXTURES, 'compose.yaml');
const MISSING_IMAGE = join(FIXTURES, 'missing-image.yaml');
// Stack names unique to this file, so it can share a machine with other tests.
const STACK = 'scli';
const BAD = 'sclibad';
const DETACHED = 'sclidet';

let node: TestNode;
let workDir: string;
let api: ApiClient;

async function tasksOf(stack: string): Promise<Task[]> {
  const res = await api.list({ kind: 'Task', stack });
  return res.objectsJson.map((j) => JSON.parse(j) as Task);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Data rows of a table (header dropped), split on runs of 2+ spaces. */
function rows(table: string): string[][] {
  return table
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => line.split(/\s{2,}/));
}

test.before(async () => {
  let imageRef: string;
  ({ node, workDir, imageRef } = await startBusyboxNode('tessera-stack-cli-'));
  api = new ApiClient(node.server);
  // The compose file names its image through interpolation; tsctl inherits this environment.
  process.env['STACK_CLI_IMAGE'] = imageRef;
});

test.after.always(async () => {
  // before() may have failed before assigning it: the declared type does not hold here.
  (api as ApiClient | undefined)?.close();
  await stopBusyboxNode(node, workDir);
});

test.serial('stack deploy prints progress per service and exits 0 once every service has converged', async (t) => {
  const out = await node.tsctl('stack', 'deploy', '-c', COMPOSE, '--timeout', '90s', STACK);
  t.regex(out, /^network\/scli\/default created$/m);
  t.regex(out, /^service\/scli\/web created$/m);
  // Not a terminal: plain change lines, ending with each service converged.
  t.regex(out, /^web: converged \(2\/2 running\)$/m);
  t.regex(out, /^worker: converged \(1\/1 running\)$/m);
  t.false(out.includes('\x1b['), 'no cursor movement outside a terminal');
  const running = (await tasksOf(STACK)).filter((x) => x.desiredState === 'running' && x.status.state === 'running');
  t.is(running.length, 3, 'the deploy returned only once all three tasks ran');

  // Deploying the same files again changes nothing and converges at once.
  const again = await node.tsctl('stack', 'deploy', '-c', COMPOSE, STACK);
  t.regex(again, /^service\/scli\/web unchanged$/m);
  t.regex(again, /^web: converged \(2\/2 running\)$/m);
});

test.serial('stack ls, services and ps show the stack', async (t) => {
  const ls = await node.tsctl('stack', 'ls');
  t.deepEqual(
    rows(ls).find((r) => r[0] === STACK),
    [STACK, '2'],
  );

  const services = rows(await node.tsctl('stack', 'services', STACK));
  t.deepEqual(
    services.map((r) => [r[1], r[2], r[3]]),
    [
      ['scli_web', 'replicated', '2/2'],
      ['scli_worker', 'replicated', '1/1'],
    ],
  );
  t.is(services[0]![4], process.env['STACK_CLI_IMAGE'] ?? '');

  const ps = await node.tsctl('stack', 'ps', STACK, '--filter', 'desired-state=running', '--no-trunc');
  t.regex(ps.split('\n')[0]!, /^ID\s+NAME\s+IMAGE\s+NODE\s+DESIRED STATE\s+CURRENT STATE\s+ERROR$/);
  const tasks = rows(ps);
  t.deepEqual(tasks.map((r) => r[1] ?? '').sort(), ['scli_web.1', 'scli_web.2', 'scli_worker.1']);
  for (const r of tasks) {
    t.is(r[3], 'node1');
    t.is(r[4], 'Running');
    t.regex(r[5]!, /^Running \d+ seconds? ago|^Running less than a second ago/);
  }

  const err = await t.throwsAsync(node.tsctl('stack', 'ps', 'nosuchstack'));
  t.regex(err!.message, /nothing found in stack "nosuchstack"/);
});

test.serial('a deploy whose image does not exist exits non-zero naming the service and the task error', async (t) => {
  const err = await t.throwsAsync(node.tsctl('stack', 'deploy', '-c', MISSING_IMAGE, '--timeout', '90s', BAD));
  t.regex(err!.message, /error: service did not converge: app \(\d+ tasks failed: image 127\.0\.0\.1:2\/tessera-test\/missing:1: /);
  t.regex(err!.message, /stdout: [\s\S]*app: 0\/1 running/, 'progress was shown before giving up');
  await node.tsctl('stack', 'rm', BAD);
  t.deepEqual(await tasksOf(BAD), []);
});

test.serial('--detach returns right after the apply, even for a stack that can never converge', async (t) => {
  const started = Date.now();
  const out = await node.tsctl('stack', 'deploy', '--detach', '-c', MISSING_IMAGE, DETACHED);
  t.regex(out, /^service\/sclidet\/app created$/m);
  t.false(/converged|running/.test(out), 'nothing was followed');
  t.log(`detached deploy took ${Date.now() - started} ms`);
  t.regex(await node.tsctl('stack', 'rm', '--detach', DETACHED), /Removing service sclidet_app/);
  await eventually("the detached stack's tasks to go", async () => ((await tasksOf(DETACHED)).length === 0 ? true : undefined), 30_000);
});

test.serial('apply -f follows its services the same way, and names a service that cannot converge', async (t) => {
  const manifest = (name: string, image: string) => `apiVersion: tessera/v1
kind: Service
metadata:
  name: ${name}
  stack: scliapply
spec:
  image: ${image}
  command: ["sh", "-c", "while true; do sleep 1; done"]
  replicas: 2
  stopGracePeriodMs: 1000
`;
  const good = join(workDir, 'apply-good.yaml');
  await writeFile(good, manifest('ticker', process.env['STACK_CLI_IMAGE'] ?? ''));
  const out = await node.tsctl('apply', '-f', good);
  t.regex(out, /^ticker: converged \(2\/2 running\)$/m);
  const bad = join(workDir, 'apply-bad.yaml');
  await writeFile(bad, manifest('nothing', '127.0.0.1:2/tessera-test/missing:1'));
  const err = await t.throwsAsync(node.tsctl('apply', '-f', bad, '--timeout', '2s'));
  t.regex(err!.message, /error: service not converged after 2s: nothing \(0\/2 running/);
  await node.tsctl('stack', 'rm', 'scliapply');
});

test.serial('stack rm removes every object of the stack and waits until no task or container is left', async (t) => {
  const pids = (await tasksOf(STACK)).map((x) => x.status.pid).filter((p): p is number => p !== undefined);
  t.is(pids.length, 3);
  const out = await node.tsctl('stack', 'rm', STACK);
  t.deepEqual(out.trim().split('\n'), ['Removing service scli_web', 'Removing service scli_worker', 'Removing network scli_default']);
  t.deepEqual(await tasksOf(STACK), [], 'no task is left when rm returns');
  for (const kind of ['Service', 'Network']) t.deepEqual((await api.list({ kind, stack: STACK })).objectsJson, [], kind);
  t.deepEqual(pids.filter(processAlive), [], 'no container process is left');
  await eventually(
    'no container directory and no container cgroup',
    async () => {
      const containers = await readdir(join(node.dataRoot, 'containers')).catch(() => []);
      const cgroups = (await listCgroups(node.cgroupParent)).filter((c) => !c.endsWith(`/${node.cgroupParent}`));
      return containers.length === 0 && cgroups.length === 0 ? true : undefined;
    },
    10_000,
  );
  t.false(rows(await node.tsctl('stack', 'ls')).some((r) => r[0] === STACK));

  const err = await t.throwsAsync(node.tsctl('stack', 'rm', STACK));
  t.regex(err!.message, /nothing found in stack "scli"/);
});
