// depends_on as start order: the pure gate, and its wiring through the real service and scheduling
// controllers over a memory store. No agent runs here: the test writes the dependency's task
// states itself, as an agent's reports would (the e2e test health.test.ts has real containers).
import { startControllerStore } from '../helpers/informers.js';
import { until as pollUntil } from '../helpers/eventually.js';
import test, { type ExecutionContext } from 'ava';

import { conditionMet, dependencyWait, dependentsOf, gateTask, type DependencyLookup } from '../../control-plane/controllers/dependency-gate.js';
import { SchedulingController } from '../../control-plane/controllers/scheduling-controller.js';
import { ServiceController } from '../../control-plane/controllers/service-controller.js';
import { API_VERSION, type Node, type Service, type ServiceDependency, type ServiceSpec, type Task, type TaskStatus } from '../../common/resources/types.js';

const NOW = '2026-01-01T00:00:00.000Z';

function service(name: string, spec: Partial<ServiceSpec> = {}, stack = 's'): Service {
  return { apiVersion: API_VERSION, kind: 'Service', metadata: { name, stack, generation: 1 }, spec: { image: 'busybox', ...spec } };
}

function task(serviceName: string, status: Partial<TaskStatus> & { state: TaskStatus['state'] }, extra: Partial<Task> = {}): Task {
  return {
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name: `${serviceName}.1.x`, stack: 's' },
    spec: { serviceName, serviceStack: 's', serviceGeneration: 1, slot: 1, spec: { image: 'busybox' } },
    desiredState: 'running',
    status: { timestamp: NOW, ...status },
    ...extra,
  };
}

function lookup(services: Service[], tasks: Task[]): DependencyLookup {
  return {
    service: (n) => services.find((s) => s.metadata.name === n),
    tasks: (n) => tasks.filter((t) => t.spec.serviceName === n),
  };
}

const web = (...deps: ServiceDependency[]) => service('web', { dependsOn: deps });

test('service_started: met once one task of the dependency runs', (t) => {
  const w = web({ service: 'db', condition: 'service_started' });
  const db = service('db');
  t.is(dependencyWait(w, lookup([w, db], [])), 'waiting for service db to start');
  t.is(dependencyWait(w, lookup([w, db], [task('db', { state: 'starting' })])), 'waiting for service db to start');
  t.is(dependencyWait(w, lookup([w, db], [task('db', { state: 'running' })])), undefined);
  t.is(
    dependencyWait(w, lookup([w, db], [task('db', { state: 'running' }, { desiredState: 'shutdown' })])),
    'waiting for service db to start',
    'a task being stopped does not count',
  );
});

test('service_healthy: met only by a running, healthy task; says when the dependency has no check', (t) => {
  const w = web({ service: 'db', condition: 'service_healthy' });
  const db = service('db');
  t.is(dependencyWait(w, lookup([w, db], [task('db', { state: 'running', health: 'starting' })])), 'waiting for service db to be healthy');
  t.is(dependencyWait(w, lookup([w, db], [task('db', { state: 'running', health: 'unhealthy' })])), 'waiting for service db to be healthy');
  t.is(dependencyWait(w, lookup([w, db], [task('db', { state: 'running' })])), 'waiting for service db to be healthy (its running tasks have no health check)');
  t.is(dependencyWait(w, lookup([w, db], [task('db', { state: 'running', health: 'healthy' })])), undefined);
  t.false(conditionMet('service_healthy', [task('db', { state: 'failed', health: 'healthy' })]), 'ended tasks do not count');
});

test('service_completed_successfully: a task that completed with exit code 0', (t) => {
  t.false(conditionMet('service_completed_successfully', [task('j', { state: 'running' })]));
  t.false(conditionMet('service_completed_successfully', [task('j', { state: 'complete', exitCode: 1 })]));
  t.true(conditionMet('service_completed_successfully', [task('j', { state: 'complete', exitCode: 0 })]));
  const slot = (n: number, state: TaskStatus['state'], exitCode: number | undefined, createdAt: string, desiredState: Task['desiredState'] = 'running') =>
    task(
      'j',
      { state, ...(exitCode !== undefined ? { exitCode } : {}) },
      {
        metadata: { name: `j.${n}.${createdAt}`, stack: 's', createdAt },
        spec: { serviceName: 'j', serviceStack: 's', serviceGeneration: 1, slot: n, spec: { image: 'busybox' } },
        desiredState,
      },
    );
  // Every slot must be done: one completed, the other still running.
  t.false(
    conditionMet('service_completed_successfully', [slot(1, 'complete', 0, '2026-01-01T00:00:01Z'), slot(2, 'running', undefined, '2026-01-01T00:00:01Z')]),
  );
  // A slot whose newest task failed (a restart may follow) is not done, even though an older one completed.
  t.false(
    conditionMet('service_completed_successfully', [
      slot(1, 'complete', 0, '2026-01-01T00:00:01Z'),
      slot(2, 'complete', 0, '2026-01-01T00:00:01Z'),
      slot(2, 'failed', 1, '2026-01-01T00:00:05Z'),
    ]),
  );
  t.true(
    conditionMet('service_completed_successfully', [
      slot(1, 'complete', 0, '2026-01-01T00:00:01Z'),
      slot(2, 'failed', 1, '2026-01-01T00:00:01Z'),
      slot(2, 'complete', 0, '2026-01-01T00:00:05Z'),
    ]),
  );
});

test('a missing dependency holds the service unless required is false; the first unmet one is named', (t) => {
  const w = web(
    { service: 'cache', condition: 'service_started', required: false },
    { service: 'db', condition: 'service_started' },
    { service: 'mq', condition: 'service_started' },
  );
  const mq = service('mq');
  t.is(dependencyWait(w, lookup([w, mq], [])), 'waiting for service db, which does not exist');
  t.is(dependencyWait(w, lookup([w, mq, service('db')], [task('db', { state: 'running' })])), 'waiting for service mq to start');
  t.is(dependencyWait(service('plain'), lookup([], [])), undefined, 'no dependencies: never held');
});

test('gateTask holds an unplaced task as pending with the reason, releases it, and leaves placed tasks alone', (t) => {
  const fresh = task('web', { state: 'new' });
  const held = gateTask(fresh, 'waiting for service db to start')!;
  t.like(held.status, {
    state: 'pending',
    message: 'waiting for service db to start',
    schedulingReason: 'waiting for service db to start',
    dependencyWait: 'waiting for service db to start',
  });
  t.is(gateTask(held, 'waiting for service db to start'), undefined, 'already held for that reason: no write');
  const released = gateTask(held, undefined)!;
  t.is(released.status.dependencyWait, undefined);
  t.is(released.status.schedulingReason, undefined);
  t.is(released.status.state, 'pending', 'the scheduler takes it from here');
  t.is(gateTask(fresh, undefined), undefined);
  t.is(gateTask(task('web', { state: 'assigned' }, { nodeName: 'n1' }), 'waiting'), undefined, 'placed: only the start is ordered');
});

test('dependentsOf: services of the same stack that name the service', (t) => {
  const all = [
    web({ service: 'db', condition: 'service_started' }),
    service('db'),
    service('web2', { dependsOn: [{ service: 'db', condition: 'service_healthy' }] }, 'other'),
  ];
  t.deepEqual(
    dependentsOf(all, 's', 'db').map((s) => s.metadata.name),
    ['web'],
  );
});

/** A memory store with the real service and scheduling controllers and one ready node; start() runs the controllers. */
async function wired(t: ExecutionContext) {
  const informers = await startControllerStore();
  const { objects, services, tasks, nodes } = informers;
  const controller = new ServiceController(objects, services, tasks, nodes);
  const scheduler = new SchedulingController(objects, nodes, tasks);
  t.teardown(() => {
    controller.stop();
    scheduler.stop();
    informers.stop();
  });
  await objects.create<Node>({
    apiVersion: API_VERSION,
    kind: 'Node',
    metadata: { name: 'n1' },
    spec: { availability: 'active', role: 'worker' },
    status: { state: 'ready', hostname: 'n1', resources: { memoryBytes: 1e9, nanoCpus: 1e9 } },
  });
  const until = (what: string, ok: () => boolean) =>
    pollUntil(() => `${what}: ${JSON.stringify(tasks.list().map((x) => [x.metadata.name, x.nodeName, x.status]))}`, ok, 5_000);

  const of = (name: string) => tasks.list().filter((x) => x.spec.serviceName === name);
  const report = (task: Task, status: Partial<TaskStatus>) =>
    objects.updateWithRetry('Task', 's', task.metadata.name, (cur) => ({ ...cur, status: { ...cur.status, ...status, timestamp: new Date().toISOString() } }));
  const start = () => {
    controller.start();
    scheduler.start();
  };
  return { objects, until, of, report, start };
}

test('wired: a service_healthy dependent is held pending until its dependency is healthy, then scheduled', async (t) => {
  const { objects, until, of, report: reportOn, start } = await wired(t);
  await objects.create(service('db', { healthcheck: { test: ['CMD', 'true'] } }));
  await objects.create(web({ service: 'db', condition: 'service_healthy' }));
  start();

  await until('db placed and web held', () => of('db')[0]?.nodeName === 'n1' && of('web')[0]?.status.dependencyWait !== undefined);
  const webTask = of('web')[0]!;
  t.is(webTask.nodeName, undefined);
  t.like(webTask.status, { state: 'pending', schedulingReason: 'waiting for service db to be healthy' });

  // The db's agent reports running with its check still starting: web stays held.
  const dbTask = of('db')[0]!;
  const report = (status: Partial<TaskStatus>) => reportOn(dbTask, status);
  await report({ state: 'running', health: 'starting' });
  await new Promise((r) => setTimeout(r, 200));
  t.is(of('web')[0]!.nodeName, undefined, 'still held while db is starting');

  await report({ health: 'healthy' });
  await until('web placed', () => of('web')[0]?.nodeName === 'n1');
  t.is(of('web')[0]!.status.dependencyWait, undefined);
  t.is(of('web')[0]!.status.state, 'assigned');
});

test('wired: a global dependent gets no task until its dependency has started (its tasks are bound to nodes at once)', async (t) => {
  const { objects, until, of, report, start } = await wired(t);
  await objects.create(service('db'));
  await objects.create(service('agent', { mode: 'global', dependsOn: [{ service: 'db', condition: 'service_started' }] }));
  start();
  await until('db placed', () => of('db')[0]?.nodeName === 'n1');
  await new Promise((r) => setTimeout(r, 200));
  t.deepEqual(of('agent'), []);
  await report(of('db')[0]!, { state: 'running' });
  await until('the agent task', () => of('agent').length === 1);
  t.is(of('agent')[0]!.nodeName, 'n1');
});
