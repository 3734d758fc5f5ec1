// The service controller's wiring of rolling updates against a real (memory) store, with real
// informers, compare-and-swap writes and timers. The node agent is the one stand-in: a store
// client that moves tasks to running (or failed, for a command ["crash"]) and stops the ones told
// to stop, as the real agent reports them — what runs the containers is not the subject here
// (test/e2e/rollout.test.ts has the real thing).
import { startControllerStore } from '../helpers/informers.js';
import { until } from '../helpers/eventually.js';
import test from 'ava';

import type { Informer } from '../../control-plane/controllers/informer.js';
import { ServiceController } from '../../control-plane/controllers/service-controller.js';
import { API_VERSION, isTerminal, type Service, type ServiceSpec, type Task } from '../../common/resources/types.js';
import type { ObjectStore } from '../../control-plane/store/object-store.js';

interface Harness {
  objects: ObjectStore;
  tasks: Informer<Task>;
  services: Informer<Service>;
  /** Fewest running tasks of the service seen at any store revision after `watchFloor` was set. */
  floor: { watching: boolean; low: number };
  /** A new controller in place of the old one, as after a manager restart or a leader change. */
  replaceController(): void;
  stop(): void;
}

async function harness(): Promise<Harness> {
  const informers = await startControllerStore();
  const { objects, services, tasks, nodes } = informers;
  let controller = new ServiceController(objects, services, tasks, nodes);
  controller.start();
  const floor = { watching: false, low: Infinity };
  const timers = new Set<NodeJS.Timeout>();
  let stopped = false;
  const later = (ms: number, fn: () => Promise<unknown>) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      // Best effort, as a real agent's late report: the task may have been deleted by the rollout
      // meanwhile (NotFound), and a wrong state would show in the test's own assertions.
      if (!stopped) void fn().catch(() => {});
    }, ms);
    timers.add(timer);
  };
  const setState = (t: Task, status: Task['status']) =>
    objects.updateWithRetry('Task', t.metadata.stack ?? '', t.metadata.name, (cur) => (isTerminal(cur.status.state) ? undefined : { ...cur, status }));
  tasks.subscribe((e) => {
    if (floor.watching) {
      const running = tasks.list().filter((t) => t.desiredState === 'running' && t.status.state === 'running').length;
      floor.low = Math.min(floor.low, running);
    }
    if (e.type === 'deleted') return;
    const t = e.object;
    if (isTerminal(t.status.state)) return;
    if (t.desiredState === 'shutdown' && e.previous?.desiredState !== 'shutdown') {
      later(60, () => setState(t, { state: 'shutdown', timestamp: new Date().toISOString() }));
    } else if (t.desiredState === 'running' && t.status.state === 'new') {
      const crash = t.spec.spec.command?.[0] === 'crash';
      later(80, () =>
        setState(t, crash ? { state: 'failed', exitCode: 1, timestamp: new Date().toISOString() } : { state: 'running', timestamp: new Date().toISOString() }),
      );
    }
  });
  return {
    objects,
    tasks,
    services,
    floor,
    replaceController: () => {
      controller.stop();
      controller = new ServiceController(objects, services, tasks, nodes);
      controller.start();
    },
    stop: () => {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      controller.stop();
      informers.stop();
    },
  };
}

const running = (h: Harness, image?: string) =>
  h.tasks.list().filter((t) => t.desiredState === 'running' && t.status.state === 'running' && (image === undefined || t.spec.spec.image === image));

function service(spec: ServiceSpec): Service {
  return { apiVersion: API_VERSION, kind: 'Service', metadata: { name: 'web', stack: 'rc' }, spec };
}

async function respec(h: Harness, change: Partial<ServiceSpec>): Promise<void> {
  await h.objects.updateWithRetry('Service', 'rc', 'web', (s) => ({ ...s, spec: { ...s.spec, ...change } }));
}

const serviceNow = (h: Harness) => h.services.list()[0]!;

test('start-first, parallelism 1: the store never shows fewer running tasks than desired; the rollout completes once', async (t) => {
  const h = await harness();
  t.teardown(() => h.stop());
  await h.objects.create(service({ image: 'app:1', replicas: 3, updateConfig: { parallelism: 1, order: 'start-first', monitorMs: 200 } }));
  await until('3 running', () => running(h).length === 3);
  h.floor.watching = true;
  await respec(h, { image: 'app:2' });
  await until('the update to complete', () => serviceNow(h).status?.update?.state === 'completed');
  t.is(running(h, 'app:2').length, 3);
  t.is(running(h).length, 3);
  t.is(h.floor.low, 3);
  t.deepEqual(
    serviceNow(h).status?.history?.map((x) => x.kind),
    ['create', 'update'],
    'one history record per generation, not per pass',
  );
  t.is(serviceNow(h).status?.previousSpec?.image, 'app:1');
});

test('an update whose tasks crash rolls back by itself (failureAction rollback)', async (t) => {
  const h = await harness();
  t.teardown(() => h.stop());
  await h.objects.create(
    service({ image: 'app:1', replicas: 2, updateConfig: { failureAction: 'rollback', monitorMs: 2_000 }, rollbackConfig: { monitorMs: 200 } }),
  );
  await until('2 running', () => running(h).length === 2);
  await respec(h, { image: 'app:2', command: ['crash'] });
  await until('the rollback to complete', () => serviceNow(h).status?.update?.state === 'rollback_completed').catch((err: Error) => {
    t.log(
      JSON.stringify(serviceNow(h), null, 1),
      JSON.stringify(h.tasks.list().map((x) => [x.metadata.name, x.spec.spec.image, x.desiredState, x.status.state, x.metadata.createdAt, x.status.timestamp])),
    );
    throw err;
  });
  const s = serviceNow(h);
  t.is(s.spec.image, 'app:1');
  t.is(s.spec.command, undefined);
  t.is(s.metadata.generation, 3, 'the rollback is a generation of its own');
  t.regex(s.status?.update?.message ?? '', /rollback completed/);
  await until('2 running app:1', () => running(h, 'app:1').length === 2);
  t.deepEqual(
    s.status?.history?.map((x) => x.kind),
    ['create', 'update', 'rollback'],
  );
});

test('a controller that takes over mid-rollout carries on from the status in the store', async (t) => {
  const h = await harness();
  t.teardown(() => h.stop());
  await h.objects.create(service({ image: 'app:1', replicas: 4, updateConfig: { parallelism: 1, delayMs: 150, monitorMs: 200 } }));
  await until('4 running', () => running(h).length === 4);
  await respec(h, { image: 'app:2' });
  await until('the first slot updated', () => running(h, 'app:2').length >= 1);
  const startedAt = serviceNow(h).status?.update?.startedAt;
  h.replaceController();
  await until('the update to complete', () => serviceNow(h).status?.update?.state === 'completed');
  t.is(running(h, 'app:2').length, 4);
  t.is(serviceNow(h).status?.update?.startedAt, startedAt, 'the same rollout, not a new one');
  t.deepEqual(
    serviceNow(h).status?.history?.map((x) => x.kind),
    ['create', 'update'],
  );
});
