import test from 'ava';

import { GLOBAL_SLOT, reconcileGlobalService } from '../../control-plane/controllers/global-reconcile.js';
import { API_VERSION, type Node, type Service, type Task } from '../../common/resources/types.js';

const NOW = Date.parse('2026-01-01T00:01:00Z');
let ids = 0;
const nextId = () => `id${++ids}`;

function node(name: string, extra: Partial<Node['spec']> = {}, state: Node['status']['state'] = 'ready'): Node {
  return {
    apiVersion: API_VERSION,
    kind: 'Node',
    metadata: { name },
    spec: { availability: 'active', role: 'worker', ...extra },
    status: { state, hostname: name, resources: { memoryBytes: 1e9, nanoCpus: 1e9 } },
  };
}

function service(spec: Partial<Service['spec']> = {}): Service {
  return {
    apiVersion: API_VERSION,
    kind: 'Service',
    metadata: { name: 'agent', stack: 's', generation: 1 },
    spec: { image: 'busybox', mode: 'global', ...spec },
  };
}

function task(nodeName: string, state: Task['status']['state'], svc = service()): Task {
  return {
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name: `s_agent.0.${nextId()}`, stack: 's', createdAt: '2026-01-01T00:00:00Z' },
    spec: { serviceName: 'agent', serviceStack: 's', serviceGeneration: 1, slot: GLOBAL_SLOT, spec: svc.spec },
    nodeName,
    desiredState: 'running',
    status: { state, timestamp: '2026-01-01T00:00:10Z' },
  };
}

const key = { stack: 's', name: 'agent' };

test('one task per eligible node, bound to it', (t) => {
  const d = reconcileGlobalService(
    { service: service(), serviceKey: key, tasks: [], nodes: [node('a'), node('b'), node('c', {}, 'down'), node('d', { availability: 'drain' })], now: NOW },
    nextId,
  );
  t.deepEqual(
    d.create.map((x) => x.nodeName),
    ['a', 'b'],
  );
  t.true(d.create.every((x) => x.status.state === 'assigned' && x.spec.slot === GLOBAL_SLOT));
});

test('a node that joins gets a task; one that already runs it does not get a second', (t) => {
  const d = reconcileGlobalService({ service: service(), serviceKey: key, tasks: [task('a', 'running')], nodes: [node('a'), node('b')], now: NOW }, nextId);
  t.deepEqual(
    d.create.map((x) => x.nodeName),
    ['b'],
  );
  t.deepEqual(d.shutdown, []);
});

test('constraints limit the nodes; a node that stops matching loses its task', (t) => {
  const svc = service({ placement: { constraints: ['node.labels.role==edge'] } });
  const running = task('a', 'running', svc);
  const d = reconcileGlobalService(
    { service: svc, serviceKey: key, tasks: [running], nodes: [node('a'), node('b', { labels: { role: 'edge' } })], now: NOW },
    nextId,
  );
  t.deepEqual(
    d.create.map((x) => x.nodeName),
    ['b'],
  );
  t.deepEqual(d.shutdown, [running.metadata.name]);
});

test('a task on a departed node is not replaced elsewhere', (t) => {
  const orphan = task('gone', 'orphaned');
  const d = reconcileGlobalService({ service: service(), serviceKey: key, tasks: [orphan], nodes: [node('a')], now: NOW }, nextId);
  t.deepEqual(
    d.create.map((x) => x.nodeName),
    ['a'],
  );
  t.deepEqual(d.remove, [orphan.metadata.name]);
});

test("restart policy none leaves a node's exited task exited", (t) => {
  const svc = service({ restart: { condition: 'none' } });
  const d = reconcileGlobalService({ service: svc, serviceKey: key, tasks: [task('a', 'complete', svc)], nodes: [node('a')], now: NOW }, nextId);
  t.deepEqual(d.create, []);
});

test('a deleted global service shuts down its tasks', (t) => {
  const running = task('a', 'running');
  const d = reconcileGlobalService({ service: undefined, serviceKey: key, tasks: [running], nodes: [node('a')], now: NOW }, nextId);
  t.deepEqual(d.shutdown, [running.metadata.name]);
});

test('global-job: one run to completion per node; a node whose task completed gets no other, a failed one is retried', (t) => {
  const job = service({ mode: 'global-job' });
  const first = reconcileGlobalService({ service: job, serviceKey: key, tasks: [], nodes: [node('a'), node('b')], now: NOW }, nextId);
  t.deepEqual(
    first.create.map((x) => x.nodeName),
    ['a', 'b'],
  );
  const done = { ...task('a', 'complete', job), status: { state: 'complete' as const, exitCode: 0, timestamp: '2026-01-01T00:00:10Z' } };
  const failed = { ...task('b', 'failed', job), status: { state: 'failed' as const, exitCode: 1, timestamp: '2026-01-01T00:00:10Z' } };
  const d = reconcileGlobalService({ service: job, serviceKey: key, tasks: [done, failed], nodes: [node('a'), node('b')], now: NOW }, nextId);
  t.deepEqual(
    d.create.map((x) => x.nodeName),
    ['b'],
  );
});
