// Scheduler, controller and dispatcher metrics moved by the real controllers and node health over
// a real (memory) store and informers, then the whole registry's text checked by Debian's
// promtool. No agent runs: the tasks only need to be placed (or not).
import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as client from 'prom-client';

import { ServiceController } from '../../control-plane/controllers/service-controller.js';
import { SchedulingController } from '../../control-plane/controllers/scheduling-controller.js';
import { NodeHealth } from '../../control-plane/dispatcher/node-health.js';
import { CONTROLLER_NAMES, ControlPlaneMetrics } from '../../control-plane/metrics/control-plane-metrics.js';
import { API_VERSION, type Node, type Service } from '../../common/resources/types.js';
import { startControllerStore, type ControllerStore } from '../helpers/informers.js';
import { eventually, until } from '../helpers/eventually.js';

const run = promisify(execFile);
const GiB = 2 ** 30;

/** The value of one series, or undefined when the registry has no such series. */
async function valueOf(registry: client.Registry, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return undefined;
  const { values } = await metric.get();
  const found = values.find(
    (v) => (v as { metricName?: string }).metricName === undefined && Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want),
  );
  return found?.value;
}

/** A histogram's _count (or a counter's value when the name ends in _count). */
async function sampleOf(registry: client.Registry, name: string, sample: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return undefined;
  const { values } = await metric.get();
  return values.find((v) => (v as { metricName?: string }).metricName === sample && Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    ?.value;
}

function readyNode(name: string, memoryBytes: number): Node {
  return {
    apiVersion: API_VERSION,
    kind: 'Node',
    metadata: { name },
    spec: { availability: 'active', role: 'worker' },
    status: { state: 'ready', hostname: name, resources: { memoryBytes, nanoCpus: 4e9 } },
  };
}

async function promtoolProblems(registry: client.Registry): Promise<string> {
  const text = await registry.metrics();
  const checking = run('promtool', ['check', 'metrics']);
  checking.child.stdin?.end(text);
  const { stdout, stderr } = await checking.catch((e: Error & { stdout: string; stderr: string }) => e);
  return `${stdout}${stderr}`.trim();
}

function controllers(t: { teardown(f: () => unknown): void; log(m: string): void }, store: ControllerStore, metrics: ControlPlaneMetrics) {
  const services = new ServiceController(store.objects, store.services, store.tasks, store.nodes, {
    log: (m) => t.log(m),
    queue: metrics.controllers.queue(CONTROLLER_NAMES.service),
    onRestart: (stack, service) => metrics.controllers.taskRestarted(stack, service),
  });
  const scheduler = new SchedulingController(store.objects, store.nodes, store.tasks, (m) => t.log(m), Date.now, undefined, {
    queue: metrics.controllers.queue(CONTROLLER_NAMES.scheduler),
    scheduling: metrics.scheduler,
  });
  t.teardown(() => {
    services.stop();
    scheduler.stop();
    store.stop();
    return store.store.close();
  });
  services.start();
  scheduler.start();
  return { services, scheduler };
}

test('a task too big for every node shows as unschedulable by reason; placing it records scheduling latency; controllers record passes', async (t) => {
  const store = await startControllerStore();
  const registry = new client.Registry();
  const metrics = new ControlPlaneMetrics(registry, () => store.services.list());
  controllers(t, store, metrics);
  await store.objects.create(readyNode('small', 1 * GiB));
  await store.objects.create<Service>({
    apiVersion: API_VERSION,
    kind: 'Service',
    metadata: { name: 'big' },
    spec: { image: 'busybox', replicas: 2, resources: { reservations: { memory: 2 * GiB } } },
  });
  await until('both tasks pending', () => store.tasks.list().filter((task) => task.status.state === 'pending').length === 2, 20_000, 20);
  await eventually('the gauges follow the pass', async () => (await valueOf(registry, 'tessera_scheduler_pending_tasks')) === 2, 20_000, 20);
  t.is(await valueOf(registry, 'tessera_scheduler_unschedulable_tasks', { reason: 'insufficient_memory' }), 2);
  t.is(await valueOf(registry, 'tessera_scheduler_unschedulable_tasks', { reason: 'not_ready' }), 0, 'every reason is exported, 0 when it rejected nothing');
  t.true(((await valueOf(registry, 'tessera_scheduler_schedule_attempts_total', { result: 'unschedulable' })) ?? 0) >= 2);
  t.is(await sampleOf(registry, 'tessera_scheduler_scheduling_duration_seconds', 'tessera_scheduler_scheduling_duration_seconds_count'), 0);

  // The controllers' queues: the service controller had a key per service, the scheduler its batch key.
  for (const name of ['service', 'scheduler']) {
    t.true(((await valueOf(registry, 'tessera_workqueue_adds_total', { name })) ?? 0) >= 1, `${name}: adds`);
    const passes = await sampleOf(registry, 'tessera_workqueue_work_duration_seconds', 'tessera_workqueue_work_duration_seconds_count', { name });
    t.true((passes ?? 0) >= 1, `${name}: work duration recorded (${passes} passes)`);
    t.true(((await sampleOf(registry, 'tessera_workqueue_queue_duration_seconds', 'tessera_workqueue_queue_duration_seconds_count', { name })) ?? 0) >= 1);
    t.true(((await valueOf(registry, 'tessera_controller_reconcile_total', { name, result: 'success' })) ?? 0) >= 1, `${name}: successful reconciles`);
    t.is(typeof (await valueOf(registry, 'tessera_workqueue_depth', { name })), 'number', `${name}: depth exported`);
    t.is(typeof (await valueOf(registry, 'tessera_workqueue_longest_running_processor_seconds', { name })), 'number');
  }
  // The service's rollout state: created, never updated.
  t.is(await valueOf(registry, 'tessera_service_rollout_state', { stack: '', service: 'big', state: 'none' }), 1);
  t.is(await valueOf(registry, 'tessera_service_rollout_state', { stack: '', service: 'big', state: 'updating' }), 0);

  // A node with room: both are placed, and the time since their creation is recorded.
  await store.objects.create(readyNode('large', 8 * GiB));
  await until('both tasks assigned', () => store.tasks.list().filter((task) => task.nodeName === 'large').length === 2, 20_000, 20);
  await eventually('pending back to 0', async () => (await valueOf(registry, 'tessera_scheduler_pending_tasks')) === 0, 20_000, 20);
  t.is(await valueOf(registry, 'tessera_scheduler_unschedulable_tasks', { reason: 'insufficient_memory' }), 0);
  t.is(await sampleOf(registry, 'tessera_scheduler_scheduling_duration_seconds', 'tessera_scheduler_scheduling_duration_seconds_count'), 2);
  t.is(await valueOf(registry, 'tessera_scheduler_schedule_attempts_total', { result: 'scheduled' }), 2);

  // A removed service's rollout series go.
  await store.objects.delete('Service', '', 'big');
  await until('service gone', () => store.services.list().length === 0, 20_000, 20);
  t.is(await valueOf(registry, 'tessera_service_rollout_state', { service: 'big' }), undefined);

  t.is(await promtoolProblems(registry), '', 'promtool check metrics finds nothing');
});

test('the service controller counts the restarts of tasks that ended on their own, not new slots', async (t) => {
  const store = await startControllerStore();
  const registry = new client.Registry();
  const metrics = new ControlPlaneMetrics(registry, () => store.services.list());
  controllers(t, store, metrics);
  await store.objects.create(readyNode('n1', 8 * GiB));
  await store.objects.create<Service>({
    apiVersion: API_VERSION,
    kind: 'Service',
    metadata: { name: 'crash', stack: 'shop' },
    spec: { image: 'busybox', replicas: 1 },
  });
  await until('the first task', () => store.tasks.list().length === 1, 20_000, 20);
  const restarts = (): Promise<number | undefined> => valueOf(registry, 'tessera_service_task_restarts_total', { stack: 'shop', service: 'crash' });
  t.is(await restarts(), 0, 'exported at 0 before the first restart');

  // The agent reports the task's container failed, three times over: each is restarted (after the back-off).
  for (let i = 1; i <= 3; i++) {
    const live = await until(
      'a live task',
      () => store.tasks.list().find((task) => task.desiredState === 'running' && task.status.state !== 'failed'),
      20_000,
      20,
    );
    await store.objects.updateWithRetry('Task', 'shop', live.metadata.name, (task) => ({
      ...task,
      status: { ...task.status, state: 'failed', message: 'exited with code 1', exitCode: 1, timestamp: new Date().toISOString() },
    }));
    await eventually(`restart ${i}`, async () => (await restarts()) === i, 20_000, 20);
  }

  // A scale-up creates a task in a new slot: not a restart.
  const service = store.services.list()[0]!;
  await store.objects.update<Service>({ ...service, spec: { ...service.spec, replicas: 2 } });
  await until('the second slot', () => store.tasks.list().some((task) => task.spec.slot === 2), 20_000, 20);
  t.is(await restarts(), 3);

  // A removed service's series go.
  await store.objects.delete('Service', 'shop', 'crash');
  await until('service gone', () => store.services.list().length === 0, 20_000, 20);
  t.is(await restarts(), undefined);
  t.is(await promtoolProblems(registry), '');
});

test('node health counts missed heartbeats and a node marked down', async (t) => {
  const store = await startControllerStore();
  t.teardown(() => {
    store.stop();
    return store.store.close();
  });
  const registry = new client.Registry();
  const metrics = new ControlPlaneMetrics(registry, () => []);
  let now = 1_000_000;
  const health = new NodeHealth(store.objects, store.nodes, store.tasks, { timeoutMs: 3000, checkEveryMs: 500, now: () => now, observer: metrics.dispatcher });
  await store.objects.create(readyNode('n1', GiB));
  await until('node seen', () => store.nodes.list().length === 1, 20_000, 20);
  health.heartbeat('n1');
  now += 400;
  await health.check();
  t.is(await valueOf(registry, 'tessera_dispatcher_heartbeats_missed_total'), 0, 'a heartbeat within the period is not missed');
  now += 1000;
  await health.check();
  t.is(await valueOf(registry, 'tessera_dispatcher_heartbeats_missed_total'), 1);
  t.is(await valueOf(registry, 'tessera_dispatcher_node_down_total'), 0);
  now += 5000;
  await health.check();
  t.is(await valueOf(registry, 'tessera_dispatcher_node_down_total'), 1);
  await until('node down in the informer', () => store.nodes.list()[0]?.status.state === 'down', 20_000, 20);
  await health.check();
  t.is(await valueOf(registry, 'tessera_dispatcher_node_down_total'), 1, 'a node already down is not counted again');
  t.is(await valueOf(registry, 'tessera_dispatcher_heartbeats_missed_total'), 2, 'nor are its heartbeats once it is down');

  metrics.dispatcher.watchSessions(() => 3);
  t.is(await valueOf(registry, 'tessera_dispatcher_sessions'), 3);
  t.is(await promtoolProblems(registry), '');
});
