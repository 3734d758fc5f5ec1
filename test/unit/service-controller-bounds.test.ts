// The service and scheduling controllers against a real (memory) store and real informers, with
// thousands of tasks: they must converge over several bounded passes, never one long synchronous
// block (issue 12 §5: replicas 1e6 was one 34 s pass on the leader, stalling Raft heartbeats).
// No agent runs the tasks: what happens to them after they are written is not the subject here.
// The event loop's longest block is measured and logged; timings are not asserted (shared machine).
import test from 'ava';
import { monitorEventLoopDelay } from 'node:perf_hooks';

import { ServiceController, type PassWrites } from '../../control-plane/controllers/service-controller.js';
import { MAX_SCHEDULER_WRITES_PER_PASS, SchedulingController, type SchedulerPassWrites } from '../../control-plane/controllers/scheduling-controller.js';
import { MAX_TASK_WRITES_PER_PASS } from '../../control-plane/controllers/service-reconcile.js';
import { API_VERSION, type Node, type Service } from '../../common/resources/types.js';
import { startControllerStore } from '../helpers/informers.js';
import { until } from '../helpers/eventually.js';

const REPLICAS = 20_000;

test(`a service of ${REPLICAS} replicas converges over bounded passes, and so does scaling it down`, async (t) => {
  const store = await startControllerStore();
  const passes: PassWrites[] = [];
  const controller = new ServiceController(store.objects, store.services, store.tasks, store.nodes, {
    onPass: (_key, writes) => passes.push({ ...writes }),
    log: (message) => t.log(message),
  });
  t.teardown(() => {
    controller.stop();
    store.stop();
    return store.store.close();
  });
  controller.start();
  const delay = monitorEventLoopDelay({ resolution: 10 });

  delay.enable();
  const started = performance.now();
  const service: Service = { apiVersion: API_VERSION, kind: 'Service', metadata: { name: 'big' }, spec: { image: 'busybox', replicas: REPLICAS } };
  await store.objects.create(service);
  await until(`${REPLICAS} tasks`, () => store.tasks.list().length >= REPLICAS, 120_000, 50);
  await controller.idle();
  delay.disable();

  const tasks = store.tasks.list();
  t.is(tasks.length, REPLICAS);
  t.deepEqual(new Set(tasks.map((task) => task.spec.slot)).size, REPLICAS, 'one task per slot');
  t.true(tasks.every((task) => task.spec.slot >= 1 && task.spec.slot <= REPLICAS));
  const creating = passes.filter((p) => p.created > 0);
  t.true(creating.length >= REPLICAS / MAX_TASK_WRITES_PER_PASS, `${creating.length} passes created tasks`);
  t.true(
    passes.every((p) => p.created + p.updated + p.shutdown + p.removed <= MAX_TASK_WRITES_PER_PASS),
    'no pass wrote more than the bound',
  );
  t.log(
    `scale up to ${REPLICAS}: ${creating.length} passes, ${((performance.now() - started) / 1000).toFixed(1)} s; ` +
      `longest event loop block ${(delay.max / 1e6).toFixed(0)} ms (p99 ${(delay.percentile(99) / 1e6).toFixed(0)} ms)`,
  );

  // Scale down to 5,000: 15,000 shutdowns, again in bounded passes.
  passes.length = 0;
  delay.reset();
  delay.enable();
  const current = store.services.list()[0]!;
  await store.objects.update<Service>({ ...current, spec: { ...current.spec, replicas: 5_000 } });
  await until('15000 shutdowns', () => store.tasks.list().filter((task) => task.desiredState === 'shutdown').length >= REPLICAS - 5_000, 120_000, 50);
  await controller.idle();
  delay.disable();
  const stopping = store.tasks.list().filter((task) => task.desiredState === 'shutdown');
  t.is(stopping.length, REPLICAS - 5_000);
  t.true(
    stopping.every((task) => task.spec.slot > 5_000),
    'the highest slots are scaled away',
  );
  t.true(passes.every((p) => p.shutdown <= MAX_TASK_WRITES_PER_PASS && p.created === 0));
  t.true(passes.filter((p) => p.shutdown > 0).length >= (REPLICAS - 5_000) / MAX_TASK_WRITES_PER_PASS);
  t.log(`scale down to 5000: ${passes.length} passes; longest event loop block ${(delay.max / 1e6).toFixed(0)} ms`);
});

test('a node that joins while 5000 tasks wait gets them over bounded scheduling passes', async (t) => {
  const store = await startControllerStore();
  const passes: SchedulerPassWrites[] = [];
  const services = new ServiceController(store.objects, store.services, store.tasks, store.nodes);
  const scheduler = new SchedulingController(
    store.objects,
    store.nodes,
    store.tasks,
    (message) => t.log(message),
    Date.now,
    (writes) => passes.push({ ...writes }),
  );
  t.teardown(() => {
    services.stop();
    scheduler.stop();
    store.stop();
    return store.store.close();
  });
  services.start();
  scheduler.start();
  const count = 5_000;
  await store.objects.create<Service>({ apiVersion: API_VERSION, kind: 'Service', metadata: { name: 'waiting' }, spec: { image: 'busybox', replicas: count } });
  await until(
    `${count} tasks pending for want of a node`,
    () => store.tasks.list().filter((task) => task.status.state === 'pending').length === count,
    120_000,
    50,
  );
  passes.length = 0;

  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  await store.objects.create<Node>({
    apiVersion: API_VERSION,
    kind: 'Node',
    metadata: { name: 'late' },
    spec: { availability: 'active', role: 'worker' },
    status: { state: 'ready', hostname: 'late', resources: { memoryBytes: 2 ** 40, nanoCpus: 2 ** 40 } },
  });
  await until(`${count} tasks assigned`, () => store.tasks.list().filter((task) => task.nodeName === 'late').length === count, 120_000, 50);
  delay.disable();
  t.true(
    passes.every((p) => p.ended + p.assigned + p.pending <= MAX_SCHEDULER_WRITES_PER_PASS),
    'no pass wrote more than the bound',
  );
  t.true(passes.filter((p) => p.assigned > 0).length >= count / MAX_SCHEDULER_WRITES_PER_PASS);
  t.log(`${count} tasks placed over ${passes.filter((p) => p.assigned > 0).length} passes; longest event loop block ${(delay.max / 1e6).toFixed(0)} ms`);
});
