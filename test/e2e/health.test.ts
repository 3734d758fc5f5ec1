// Health checks, depends_on start order, extra_hosts and dns end to end on one real node: tsd in
// a network namespace of the test's own, real busybox containers whose probes the agent execs
// inside them. Serial: the node is expensive and the steps share it.
import test from 'ava';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { Service, Task } from '../../common/resources/types.js';
import { eventually } from '../helpers/eventually.js';
import type { TestNode } from '../helpers/tsd-node.js';
import { startBusyboxNode, stopBusyboxNode } from '../helpers/busybox-node.js';
import { controllerDir } from '../helpers/host-cgroups.js';

let node: TestNode;
let workDir: string;
let imageRef: string;

const STACK = 'hc';
/** Probes every 300 ms; two failures in a row make a task unhealthy. */
const FAST_CHECK = `  healthcheck:
    test: ["CMD-SHELL", "test -f /tmp/ok"]
    intervalMs: 300
    timeoutMs: 2000
    retries: 2
`;

/** Spec lines for a service that starts after `on` meets `condition`. */
function dependsOn(on: string, condition: string): string {
  return `  dependsOn:
    - service: ${on}
      condition: ${condition}
`;
}

function service(name: string, command: string, specLines = ''): string {
  return `apiVersion: tessera/v1
kind: Service
metadata:
  name: ${name}
  stack: ${STACK}
spec:
  image: ${imageRef}
  command: ["sh", "-c", ${JSON.stringify(command)}]
  stopGracePeriodMs: 500
${specLines}`;
}

async function apply(name: string, ...docs: string[]): Promise<string> {
  const path = join(workDir, `${name}.yaml`);
  await writeFile(path, docs.join('---\n'));
  // --detach: the steps below watch the tasks themselves, also while a service has not converged.
  return node.tsctl('apply', '--detach', '-f', path);
}

async function tasksOf(serviceName: string): Promise<Task[]> {
  const parsed = JSON.parse(await node.tsctl('get', 'tasks', '-o', 'json', '--stack', STACK)) as Task[] | { items: Task[] };
  return (Array.isArray(parsed) ? parsed : parsed.items).filter((t) => t.spec.serviceName === serviceName);
}

async function serviceNamed(name: string): Promise<Service> {
  const parsed = JSON.parse(await node.tsctl('get', 'services', '-o', 'json', '--stack', STACK)) as Service[] | { items: Service[] };
  return (Array.isArray(parsed) ? parsed : parsed.items).find((s) => s.metadata.name === name)!;
}

const live = (t: Task) => t.desiredState === 'running' && t.status.state === 'running';

test.before(async () => {
  ({ node, workDir, imageRef } = await startBusyboxNode('tessera-e2e-health-'));
});

test.after.always(async () => {
  await stopBusyboxNode(node, workDir);
});

test.serial('a task whose check passes becomes healthy, shown by get tasks and describe task', async (t) => {
  await apply('fine', service('fine', 'touch /tmp/ok; echo probe-me > /tmp/ok; exec sleep 1000', FAST_CHECK));
  const [task] = await eventually(
    'a healthy task',
    async () => {
      const ts = (await tasksOf('fine')).filter((x) => live(x) && x.status.health === 'healthy');
      return ts.length === 1 ? ts : undefined;
    },
    60_000,
  );
  t.truthy(task!.status.startedAt, 'the manager recorded when it started running');
  t.is(task!.status.failingStreak, 0);
  t.is(task!.status.healthLog?.at(-1)?.exitCode, 0);

  const table = await node.tsctl('get', 'tasks', '--stack', STACK);
  t.regex(table.split('\n')[0]!, /\sHEALTH\s/);
  t.regex(table, new RegExp(`${task!.metadata.name.replace(/\./g, '\\.')}\\s.*\\srunning .*\\shealthy\\s`));
  const described = await node.tsctl('describe', 'task', task!.metadata.name);
  t.regex(described, /^Health:\s+healthy/m);
  t.regex(described, /^Last health probes:\n\s+\S+\s+ok$/m);
});

test.serial('after kill -9 of tsd the adopted container is still probed: it turns unhealthy and is replaced', async (t) => {
  const [before] = (await tasksOf('fine')).filter((x) => live(x) && x.status.health === 'healthy');
  t.truthy(before);
  await node.killDaemon();
  await node.restartDaemon();
  // The file the check tests goes, from outside (the rootfs is an overlay mount in the host's
  // mount namespace): only a prober that resumed after the restart can notice.
  await rm(join(node.dataRoot, 'containers', before!.status.containerId!, 'rootfs', 'tmp', 'ok'));
  const old = await eventually(
    'the adopted task unhealthy and shut down',
    async () => {
      const task = (await tasksOf('fine')).find((x) => x.metadata.name === before!.metadata.name);
      return task?.status.health === 'unhealthy' && task.desiredState === 'shutdown' ? task : undefined;
    },
    30_000,
  );
  t.is(old.status.pid, before!.status.pid, 'the same container, adopted');
  await eventually(
    'a replacement healthy',
    async () => (await tasksOf('fine')).find((x) => x.metadata.name !== before!.metadata.name && live(x) && x.status.health === 'healthy'),
    30_000,
  );
});

test.serial('a task whose check starts failing is shut down and replaced', async (t) => {
  // Healthy for about 2 s, then the file the check tests is gone.
  await apply(
    'flaky',
    service(
      'flaky',
      'touch /tmp/ok; sleep 2; rm /tmp/ok; echo gone; exec sleep 1000',
      `${FAST_CHECK}  restart:
    delayMs: 100
`,
    ),
  );
  const first = await eventually('the first task healthy', async () => (await tasksOf('flaky')).find((x) => live(x) && x.status.health === 'healthy'), 60_000);
  const replaced = await eventually(
    'the first task unhealthy, shut down, and a replacement running',
    async () => {
      const ts = await tasksOf('flaky');
      const old = ts.find((x) => x.metadata.name === first.metadata.name);
      const fresh = ts.find((x) => x.metadata.name !== first.metadata.name && x.status.state === 'running');
      return old && old.status.health === 'unhealthy' && old.desiredState === 'shutdown' && fresh ? { old, fresh } : undefined;
    },
    30_000,
  );
  t.true((replaced.old.status.failingStreak ?? 0) >= 2, 'retries failures in a row');
  t.true(
    replaced.old.status.healthLog!.some((p) => p.exitCode === 1),
    'the failed probes are on the task',
  );
  t.is(replaced.fresh.spec.slot, first.spec.slot);
  const described = await node.tsctl('describe', 'task', first.metadata.name);
  t.regex(described, /^Health:\s+unhealthy .*2 failed probes in a row/m);
  t.regex(described, /failed \(exit 1\)/);
  await node.tsctl('delete', '-f', join(workDir, 'flaky.yaml'));
});

test.serial('a probe that outlives its timeout is a failure, and the probe process is killed', async (t) => {
  // One probe every 3 s, each killed after 300 ms: between probes the container holds only its own process.
  await apply(
    'slow',
    service(
      'slow',
      'exec sleep 1000',
      `  healthcheck:
    test: ["CMD", "sleep", "30"]
    intervalMs: 3000
    timeoutMs: 300
    retries: 3
`,
    ),
  );
  const task = await eventually(
    'a timed-out probe reported',
    async () => (await tasksOf('slow')).find((x) => live(x) && (x.status.failingStreak ?? 0) >= 1),
    60_000,
  );
  t.is(task.status.health, 'starting');
  t.is(task.status.healthLog?.at(-1)?.exitCode, -1);
  t.regex(task.status.healthLog?.at(-1)?.output ?? '', /exceeded timeout \(300 ms\)/);
  const procs = (await readFile(join(await controllerDir('pids', join(node.cgroupParent, task.status.containerId!)), 'cgroup.procs'), 'utf8'))
    .split('\n')
    .filter(Boolean);
  t.deepEqual(procs, [String(task.status.pid)], "only the container's own process is left");
  await node.tsctl('delete', '-f', join(workDir, 'slow.yaml'));
});

test.serial('depends_on service_healthy: the dependent starts only once its dependency is healthy', async (t) => {
  // The db becomes healthy about 10 s after it starts (long enough for the checks below to see the
  // app still held on a loaded machine); its failed probes before that fall in the start period,
  // so they do not make it unhealthy.
  const db = service(
    'db',
    'sleep 10; touch /tmp/ok; exec sleep 1000',
    `${FAST_CHECK}    startPeriodMs: 20000
    startIntervalMs: 300
`,
  );
  const app = service('app', 'exec sleep 1000', dependsOn('db', 'service_healthy'));
  await apply('deps', app, db);
  const held = await eventually(
    'app held pending',
    async () => (await tasksOf('app')).find((x) => x.status.state === 'pending' && x.status.dependencyWait !== undefined),
    20_000,
  );
  t.is(held.status.schedulingReason, 'waiting for service db to be healthy');
  t.is(held.nodeName, undefined);
  const table = await node.tsctl('get', 'tasks', '--stack', STACK);
  t.regex(table, /waiting for service db/);

  const [appTask] = await eventually(
    'app running',
    async () => {
      const ts = (await tasksOf('app')).filter(live);
      return ts.length === 1 ? ts : undefined;
    },
    60_000,
  );
  const dbTask = (await tasksOf('db')).find((x) => live(x) && x.status.health === 'healthy');
  t.truthy(dbTask, 'db is healthy');
  t.true(Date.parse(appTask!.status.startedAt!) >= Date.parse(dbTask!.status.healthChangedAt!), 'app started after db became healthy');
  t.is((await tasksOf('db')).length, 1, 'the failures in the start period did not get db replaced');
});

test.serial('a replicated job runs each completion once; a service that depends on it completing starts after it', async (t) => {
  const job = service(
    'migrate',
    'sleep 1; echo migrated',
    `  mode: replicated-job
  replicas: 3
`,
  );
  const after = service('after', 'exec sleep 1000', dependsOn('migrate', 'service_completed_successfully'));
  await apply('job', after, job);
  const done = await eventually(
    '3 completions',
    async () => {
      const ts = await tasksOf('migrate');
      return ts.filter((x) => x.status.state === 'complete' && x.status.exitCode === 0).length === 3 ? ts : undefined;
    },
    60_000,
  );
  const [afterTask] = await eventually(
    'the dependent running',
    async () => {
      const ts = (await tasksOf('after')).filter(live);
      return ts.length === 1 ? ts : undefined;
    },
    60_000,
  );
  const lastCompletion = Math.max(...done.map((x) => Date.parse(x.status.timestamp)));
  t.true(Date.parse(afterTask!.status.startedAt!) >= lastCompletion, 'the dependent started after the last completion');
  // A job's completed tasks are not run again.
  await new Promise((r) => setTimeout(r, 2000));
  t.is((await tasksOf('migrate')).length, 3);
  t.is((await node.tsctl('logs', `${STACK}/migrate`, '--no-prefix')).match(/^migrated$/gm)?.length, 3, 'each completion ran once');
});

test.serial("extra_hosts and dns land in the container's /etc/hosts and /etc/resolv.conf", async (t) => {
  await apply(
    'names',
    service(
      'names',
      'exec sleep 1000',
      `  extraHosts:
    - hostname: db.internal
      address: 10.9.8.7
    - hostname: v6.internal
      address: fd00::7
  dns:
    servers: [192.0.2.53]
    search: [corp.example]
    options: ["ndots:2"]
`,
    ),
  );
  const task = await eventually('names running', async () => (await tasksOf('names')).find(live), 60_000);
  // The container's rootfs is an overlay mount in the host's mount namespace; what the container
  // reads as /etc/hosts is this file.
  const rootfs = join(node.dataRoot, 'containers', task.status.containerId!, 'rootfs');
  const hosts = await readFile(join(rootfs, 'etc/hosts'), 'utf8');
  t.regex(hosts, /^127\.0\.0\.1\tlocalhost$/m);
  t.regex(hosts, /^10\.9\.8\.7\tdb\.internal$/m);
  t.regex(hosts, /^fd00::7\tv6\.internal$/m);
  t.is(await readFile(join(rootfs, 'etc/resolv.conf'), 'utf8'), 'nameserver 192.0.2.53\nsearch corp.example\noptions ndots:2\n');
});

/** States of the children of a host pid, e.g. ['S', 'Z'], from /proc (children are host pids too). */
async function childStates(pid: number): Promise<string[]> {
  const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).split(' ').filter(Boolean);
  return Promise.all(children.map(async (c) => /\) (\S) /.exec(await readFile(`/proc/${c}/stat`, 'utf8'))?.[1] ?? '?'));
}

test.serial('init: true runs an init as PID 1 that reaps orphans and forwards the stop signal; without it neither happens', async (t) => {
  // The inner shell leaves a short sleep behind: orphaned, it becomes a child of the container's PID 1.
  const orphaning = 'sh -c "sleep 0.2 &"; exec sleep 1000';
  await apply('init', service('withinit', orphaning, '  init: true\n'), service('noinit', orphaning));
  const [withInit, noInit] = await eventually(
    'both running',
    async () => {
      const a = (await tasksOf('withinit')).find(live);
      const b = (await tasksOf('noinit')).find(live);
      return a && b ? [a, b] : undefined;
    },
    60_000,
  );
  await new Promise((r) => setTimeout(r, 1000));
  t.regex((await readFile(`/proc/${withInit!.status.pid}/cmdline`, 'utf8')).replace(/\0/g, ' '), /^\/\.tessera-init -- sh -c /);
  t.deepEqual(await childStates(withInit!.status.pid!), ['S'], "the init has one child, the service's sleep; the orphan was reaped");
  t.deepEqual(await childStates(noInit!.status.pid!), ['Z'], 'without init the orphan stays a zombie (the contrast)');

  // An update stops the old tasks and keeps them in the history, with their exit codes.
  const v2 = '  env:\n    V: "2"\n';
  await apply('init', service('withinit', orphaning, `  init: true\n${v2}`), service('noinit', orphaning, v2));
  const ended = await eventually(
    'both first tasks stopped',
    async () => {
      const ts = [...(await tasksOf('withinit')), ...(await tasksOf('noinit'))].filter(
        (x) => x.metadata.name === withInit!.metadata.name || x.metadata.name === noInit!.metadata.name,
      );
      return ts.length === 2 && ts.every((x) => x.status.state === 'shutdown') ? ts : undefined;
    },
    30_000,
  );
  const byService = new Map(ended.map((x) => [x.spec.serviceName, x]));
  t.is(byService.get('withinit')!.status.exitCode, 143, 'SIGTERM reached the sleep through the init (a SIGKILL after the grace period would give 137)');
  t.is(byService.get('noinit')!.status.exitCode, 137, 'a bare PID 1 ignores SIGTERM and is killed after the grace period');
  await node.tsctl('delete', '-f', join(workDir, 'init.yaml'));
});

test.serial('an update to a spec whose health check fails rolls back by itself (start-first, the old task serves throughout)', async (t) => {
  const policy = `  updateConfig:
    order: start-first
    failureAction: rollback
    monitorMs: 3000
`;
  const good = service('roll', 'touch /tmp/ok; exec sleep 1000', `${FAST_CHECK}${policy}`);
  await apply('roll', good);
  const original = await eventually('roll healthy', async () => (await tasksOf('roll')).find((x) => live(x) && x.status.health === 'healthy'), 60_000);

  // The new spec never creates /tmp/ok: its task runs but never becomes healthy.
  await apply('roll', service('roll', 'echo v2; exec sleep 1000', `${FAST_CHECK}${policy}`));
  const rolledBack = await eventually(
    'the update rolled back',
    async () => {
      const s = await serviceNamed('roll');
      return s.status?.update?.state === 'rollback_completed' ? s : undefined;
    },
    60_000,
  );
  t.regex(rolledBack.status!.update!.rollbackReason ?? '', /failed within the monitor period/);
  t.regex(rolledBack.spec.command!.at(-1)!, /touch \/tmp\/ok/, 'the spec is the original one again');
  const ts = await tasksOf('roll');
  const orig = ts.find((x) => x.metadata.name === original.metadata.name)!;
  t.true(live(orig), 'start-first: the original task never stopped');
  t.true(
    ts.some((x) => x.status.health === 'unhealthy' && x.spec.spec.command!.at(-1)!.includes('echo v2')),
    'the new task was unhealthy',
  );
});
