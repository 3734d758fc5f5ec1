// When `stack deploy` / `apply` consider a service converged, still converging, or failed.
import test from 'ava';

import { templateKey } from '../../control-plane/controllers/rollout.js';
import { API_VERSION, type Node, type Service, type ServiceSpec, type Task, type UpdateStatus } from '../../common/resources/types.js';
import { allSettled, requiresHealth, serviceConvergence, type ConvergenceInput } from '../../cli/output/convergence.js';

const AT = '2026-01-01T00:00:00.000Z';
const v1: ServiceSpec = { image: 'app:1', replicas: 3 };
const v2: ServiceSpec = { image: 'app:2', replicas: 3 };
const checked: ServiceSpec = { image: 'app:1', replicas: 2, healthcheck: { test: ['CMD', 'true'] } };

function svc(spec: ServiceSpec, status: Service['status'] = { currentSpec: spec }): Service {
  return { apiVersion: API_VERSION, kind: 'Service', metadata: { name: 'web', stack: 'shop', generation: 1 }, spec, status };
}

let seq = 0;
function task(
  spec: ServiceSpec,
  state: Task['status']['state'] = 'running',
  extra: Partial<Task['status']> & { desiredState?: Task['desiredState']; nodeName?: string; at?: string } = {},
): Task {
  const { desiredState, nodeName, at, ...status } = extra;
  seq += 1;
  return {
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name: `shop_web.${seq}.t${seq}`, stack: 'shop' },
    spec: { serviceName: 'web', serviceStack: 'shop', serviceGeneration: 1, slot: seq, spec },
    ...(nodeName ? { nodeName } : {}),
    desiredState: desiredState ?? 'running',
    status: { state, timestamp: at ?? AT, ...status },
  };
}

function node(name: string, extra: Partial<Node['status']> = {}, labels: Record<string, string> = {}): Node {
  return {
    apiVersion: API_VERSION,
    kind: 'Node',
    metadata: { name },
    spec: { availability: 'active', role: 'worker', labels },
    status: { state: 'ready', hostname: name, resources: { memoryBytes: 1 << 30, nanoCpus: 1e9 }, ...extra },
  };
}

function input(service: Service | undefined, tasks: Task[], more: Partial<ConvergenceInput> = {}): ConvergenceInput {
  return { service, appliedTemplate: templateKey(service?.spec ?? v1), tasks, nodes: [], endedBefore: new Set(), failureLimit: 3, ...more };
}

const update = (state: UpdateStatus['state'], more: Partial<UpdateStatus> = {}): UpdateStatus => ({ state, startedAt: AT, ...more });

test('all desired tasks of the current template running: converged', (t) => {
  const s = serviceConvergence(input(svc(v1), [task(v1), task(v1), task(v1)]));
  t.like(s, { phase: 'converged', ready: 3, desired: 3, detail: '' });
});

test('fewer running than desired: converging, with what it waits for', (t) => {
  t.like(serviceConvergence(input(svc(v1), [task(v1), task(v1), task(v1, 'starting')])), { phase: 'converging', ready: 2, desired: 3, detail: 'starting' });
  const pending = task(v1, 'pending', { schedulingReason: 'no node has 4 CPUs free' });
  t.like(serviceConvergence(input(svc(v1), [task(v1), task(v1), pending])), { detail: 'pending: no node has 4 CPUs free' });
});

test('a spec the controller has not taken up yet is pending even if old tasks run', (t) => {
  const s = serviceConvergence(input(svc(v2, { currentSpec: v1, update: update('completed') }), [task(v1), task(v1), task(v1)]));
  t.like(s, { phase: 'pending', ready: 0, detail: 'waiting for the controller' });
});

test('a rollout in progress is not converged even when the counts match; old tasks left are named', (t) => {
  const service = svc(v2, { currentSpec: v2, previousSpec: v1, update: update('updating') });
  t.like(serviceConvergence(input(service, [task(v2), task(v2), task(v2)])), { phase: 'converging', detail: 'updating' });
  t.like(serviceConvergence(input(service, [task(v2), task(v2), task(v1)])), { phase: 'converging', detail: 'updating (1 old task left)' });
  const done = svc(v2, { currentSpec: v2, previousSpec: v1, update: update('completed') });
  t.like(serviceConvergence(input(done, [task(v2), task(v2), task(v2)])), { phase: 'converged' });
  t.like(serviceConvergence(input(done, [task(v2), task(v2), task(v2), task(v1)])), { phase: 'converging', detail: 'replacing 1 old task' });
});

test('more live tasks than desired (a scale down in progress) is not converged; tasks being shut down do not count', (t) => {
  const service = svc({ ...v1, replicas: 1 });
  const one = { ...v1, replicas: 1 };
  t.like(serviceConvergence(input(service, [task(one), task(one)])), { phase: 'converging', detail: 'stopping 1 task' });
  t.like(serviceConvergence(input(service, [task(one), task(one, 'running', { desiredState: 'shutdown' })])), { phase: 'converged', ready: 1 });
});

test('a paused rollout fails with its message', (t) => {
  const s = serviceConvergence(input(svc(v2, { currentSpec: v2, update: update('paused', { message: 'update paused: task x failed' }) }), [task(v2)]));
  t.like(s, { phase: 'failed', detail: 'rollout paused: update paused: task x failed' });
});

test('an automatic rollback (the spec on the service is no longer the applied one) fails with its reason', (t) => {
  const rolledBack = svc(v1, { currentSpec: v1, previousSpec: v2, update: update('rollback_completed', { rollbackReason: 'task shop_web.2 unhealthy' }) });
  const s = serviceConvergence(input(rolledBack, [task(v1), task(v1), task(v1)], { appliedTemplate: templateKey(v2) }));
  t.like(s, { phase: 'failed', detail: 'rolled back: task shop_web.2 unhealthy' });
});

test('a spec changed by someone else while following fails without claiming a rollback', (t) => {
  const changed = svc(v2, { currentSpec: v2, previousSpec: v1, update: update('updating') });
  t.like(serviceConvergence(input(changed, [task(v2)], { appliedTemplate: templateKey(v1) })), {
    phase: 'failed',
    detail: 'its spec was changed by another apply while following',
  });
});

test('an old automatic rollback does not fail a later apply of the spec the service already has', (t) => {
  const settled = svc(v1, { currentSpec: v1, previousSpec: v2, update: update('rollback_completed', { rollbackReason: 'earlier failure' }) });
  t.like(serviceConvergence(input(settled, [task(v1), task(v1), task(v1)])), { phase: 'converged' });
});

test('tasks that keep failing fail the service with the last task error; failures from before following do not count', (t) => {
  const failures = [1, 2, 3].map((i) =>
    task(v1, 'rejected', { message: `image app:1: not found (${i})`, desiredState: 'shutdown', at: `2026-01-01T00:00:0${i}.000Z` }),
  );
  const s = serviceConvergence(input(svc(v1), failures));
  t.like(s, { phase: 'failed', ready: 0, lastError: 'image app:1: not found (3)' });
  t.regex(s.detail, /^3 tasks failed: image app:1: not found \(3\)$/);

  const old = serviceConvergence(input(svc(v1), failures, { endedBefore: new Set(failures.map((f) => f.metadata.name)) }));
  t.is(old.phase, 'converging');
  t.is(old.detail, 'retrying after: image app:1: not found (3)');

  const two = serviceConvergence(input(svc(v1), [...failures.slice(0, 2), task(v1, 'preparing', { at: '2026-01-01T00:00:05.000Z' })]));
  t.like(two, { phase: 'converging', lastError: 'image app:1: not found (2)', detail: 'retrying after: image app:1: not found (2)' });
});

test('a task the restart policy will not replace fails the service at once', (t) => {
  const none: ServiceSpec = { ...v1, replicas: 1, restart: { condition: 'none' } };
  const exited = task(none, 'failed', { message: 'exit status 3', exitCode: 3 });
  t.like(serviceConvergence(input(svc(none), [exited])), {
    phase: 'failed',
    detail: `task ${exited.metadata.name} failed: exit status 3, and the restart policy (none) does not replace it`,
  });
  const onFailure: ServiceSpec = { ...v1, replicas: 1, restart: { condition: 'on-failure' } };
  const completed = task(onFailure, 'complete', { exitCode: 0 });
  t.like(serviceConvergence(input(svc(onFailure), [completed])), {
    phase: 'failed',
    detail: `task ${completed.metadata.name} completed, and the restart policy (on-failure) does not replace it`,
  });
  t.like(
    serviceConvergence(input(svc(onFailure), [task(onFailure, 'failed', { message: 'exit status 1' }), task(onFailure, 'starting')])),
    { phase: 'converging' },
    'on-failure restarts a failed task',
  );
  t.like(
    serviceConvergence(input(svc(none), [exited], { endedBefore: new Set([exited.metadata.name]) })),
    { phase: 'converging' },
    'an old end does not count',
  );
});

test('a removed service fails', (t) => {
  t.like(serviceConvergence(input(undefined, [])), { phase: 'failed', detail: 'the service was removed' });
});

test('with a health check, running tasks count only once healthy', (t) => {
  const service = svc(checked);
  const starting = [task(checked, 'running', { health: 'starting' }), task(checked, 'running', { health: 'healthy' })];
  t.like(serviceConvergence(input(service, starting)), { phase: 'converging', ready: 1, detail: 'waiting for health checks' });
  const healthy = [task(checked, 'running', { health: 'healthy' }), task(checked, 'running', { health: 'healthy' })];
  t.like(serviceConvergence(input(service, healthy)), { phase: 'converged', ready: 2 });
});

test('without a health check (or with it disabled) health is not required', (t) => {
  t.false(requiresHealth(v1));
  t.false(requiresHealth({ ...checked, healthcheck: { test: ['CMD', 'true'], disable: true } }));
  t.false(requiresHealth({ ...checked, healthcheck: { test: ['NONE'] } }));
  t.true(requiresHealth(checked));
  const disabled: ServiceSpec = { ...checked, healthcheck: { test: ['NONE'] } };
  t.like(serviceConvergence(input(svc(disabled), [task(disabled), task(disabled)])), { phase: 'converged' });
});

test('a global service wants one task per eligible node (ready, active, matching constraints)', (t) => {
  const global: ServiceSpec = { image: 'agent:1', mode: 'global', placement: { constraints: ['node.labels.zone==a'] } };
  const nodes = [node('n1', {}, { zone: 'a' }), node('n2', {}, { zone: 'a' }), node('n3', {}, { zone: 'b' }), node('n4', { state: 'down' }, { zone: 'a' })];
  const one = serviceConvergence(input(svc(global), [task(global, 'running', { nodeName: 'n1' })], { nodes }));
  t.like(one, { phase: 'converging', ready: 1, desired: 2 });
  const both = serviceConvergence(input(svc(global), [task(global, 'running', { nodeName: 'n1' }), task(global, 'running', { nodeName: 'n2' })], { nodes }));
  t.like(both, { phase: 'converged', desired: 2 });
});

test('replicas 0 is converged once nothing runs', (t) => {
  const zero = { ...v1, replicas: 0 };
  t.like(serviceConvergence(input(svc(zero), [])), { phase: 'converged', ready: 0, desired: 0 });
});

test('allSettled: every service converged or failed', (t) => {
  const c = serviceConvergence(input(svc(v1), [task(v1), task(v1), task(v1)]));
  const f = serviceConvergence(input(undefined, []));
  const w = serviceConvergence(input(svc(v1), []));
  t.true(allSettled([c, f]));
  t.false(allSettled([c, w]));
  t.true(allSettled([]));
});
