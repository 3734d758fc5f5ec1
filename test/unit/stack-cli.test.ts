// What `tsctl stack ls|services|ps` print, and the option parsing of the stack commands.
import test from 'ava';

import { API_VERSION, type Network, type Node, type Service, type ServiceSpec, type Task } from '../../common/resources/types.js';
import { desiredTasks, parsePsFilters, renderStackList, renderStackPs, renderStackServices } from '../../cli/commands/stack-tables.js';
import { followTargets, parseDuration } from '../../cli/output/follow-services.js';
import { templateKey } from '../../control-plane/controllers/rollout.js';

const NOW = new Date('2026-01-01T00:10:00.000Z');

function svc(stack: string, name: string, spec: ServiceSpec, uid = '0123456789abcdef-0000'): Service {
  return { apiVersion: API_VERSION, kind: 'Service', metadata: { name, stack, uid }, spec };
}

function net(stack: string, name: string): Network {
  return { apiVersion: API_VERSION, kind: 'Network', metadata: { name, stack }, spec: {} };
}

function task(
  service: string,
  slot: number,
  id: string,
  state: Task['status']['state'],
  more: { desired?: Task['desiredState']; node?: string; at?: string; error?: string; message?: string } = {},
): Task {
  return {
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name: `shop_${service}.${slot}.${id}`, stack: 'shop' },
    spec: { serviceName: service, serviceStack: 'shop', serviceGeneration: 1, slot, spec: { image: `${service}:1` } },
    nodeName: more.node ?? 'node1',
    desiredState: more.desired ?? 'running',
    status: {
      state,
      timestamp: more.at ?? '2026-01-01T00:09:50.000Z',
      ...(more.error ? { error: more.error } : {}),
      ...(more.message ? { message: more.message } : {}),
    },
  };
}

function node(name: string): Node {
  return {
    apiVersion: API_VERSION,
    kind: 'Node',
    metadata: { name },
    spec: { availability: 'active', role: 'manager' },
    status: { state: 'ready', hostname: name, resources: { memoryBytes: 1 << 30, nanoCpus: 1e9 } },
  };
}

test('stack ls: one row per stack with its service count; objects outside any stack are not a stack', (t) => {
  const out = renderStackList([
    svc('shop', 'web', { image: 'a' }),
    svc('shop', 'db', { image: 'b' }),
    net('shop', 'default'),
    net('blog', 'default'),
    svc('', 'loose', { image: 'c' }),
  ]);
  t.is(out, 'NAME   SERVICES\nblog   0\nshop   2\n');
  t.is(renderStackList([]), 'NAME   SERVICES\n');
});

test('stack services: ID, STACK_NAME, mode, running/desired, image, ports', (t) => {
  const services = [
    svc('shop', 'web', { image: 'web:1', replicas: 3, ports: [{ target: 80, published: 8080 }] }),
    svc('shop', 'agent', { image: 'agent:1', mode: 'global' }, 'fedcba9876543210'),
  ];
  const tasks = [
    task('web', 1, 'a1', 'running'),
    task('web', 2, 'a2', 'running'),
    task('web', 3, 'a3', 'starting'),
    task('web', 4, 'a4', 'running', { desired: 'shutdown' }),
    task('agent', 0, 'b1', 'running'),
  ];
  const out = renderStackServices(services, tasks, [node('node1'), node('node2')]);
  t.is(
    out,
    [
      'ID             NAME         MODE         REPLICAS   IMAGE     PORTS',
      'fedcba987654   shop_agent   global       1/2        agent:1   -',
      '0123456789ab   shop_web     replicated   2/3        web:1     *:8080->80/tcp',
      '',
    ].join('\n'),
  );
  t.is(desiredTasks(svc('s', 'x', { image: 'x' }), []), 1, 'replicas default to 1');
});

test('stack ps: newest task of each slot first, older ones as " \\_", states capitalised with their age, errors quoted', (t) => {
  const tasks = [
    task('web', 1, 'old1', 'failed', { desired: 'shutdown', at: '2026-01-01T00:08:00.000Z', error: 'exit status 1' }),
    task('web', 1, 'new1', 'running', { at: '2026-01-01T00:09:55.000Z' }),
    task('web', 2, 'x2', 'rejected', { desired: 'shutdown', message: `image web:1: ${'a very long registry error '.repeat(3)}` }),
    task('web', 10, 'x10', 'running'),
  ];
  const out = renderStackPs(tasks, { now: NOW });
  const lines = out.split('\n');
  t.regex(lines[0]!, /^ID\s+NAME\s+IMAGE\s+NODE\s+DESIRED STATE\s+CURRENT STATE\s+ERROR$/);
  t.regex(lines[1]!, /^new1\s+shop_web\.1\s+web:1\s+node1\s+Running\s+Running 5 seconds ago$/);
  t.regex(lines[2]!, /^old1\s+\\_ shop_web\.1\s+web:1\s+node1\s+Shutdown\s+Failed 2 minutes ago\s+"exit status 1"$/);
  t.regex(lines[3]!, /^x2\s+shop_web\.2\s+.*Rejected 10 seconds ago\s+"image web:1: a very long registry error…"$/);
  t.regex(lines[4]!, /^x10\s+shop_web\.10\s/, 'slots sort numerically');

  const full = renderStackPs(tasks, { now: NOW, noTrunc: true });
  t.true(full.includes(`"image web:1: ${'a very long registry error '.repeat(3)}"`), '--no-trunc shows the whole error');

  const running = renderStackPs(tasks, { now: NOW, filters: parsePsFilters(['desired-state=running']) });
  t.deepEqual(
    running
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split(/\s+/)[0]),
    ['new1', 'x10'],
  );
});

test('stack ps: a global task is named by its node', (t) => {
  const out = renderStackPs([task('agent', 0, 'g1', 'running', { node: 'node2' })], { now: NOW });
  t.regex(out, /g1\s+shop_agent\.node2\s/);
});

test('ps filters: known keys only, with a clear error', (t) => {
  t.deepEqual(parsePsFilters(['desired-state=running', 'node=node1']), { desiredState: 'running', node: 'node1' });
  t.throws(() => parsePsFilters(['colour=red']), { message: /--filter "colour=red": expected one of desired-state=VALUE, node=VALUE, name=VALUE, id=VALUE/ });
  t.throws(() => parsePsFilters(['desired-state=sleeping']), { message: /desired-state must be running, shutdown or accepted/ });
  t.throws(() => parsePsFilters(['node']), { message: /expected one of/ });
});

test('durations for --timeout', (t) => {
  t.is(parseDuration('90s'), 90_000);
  t.is(parseDuration('5m'), 300_000);
  t.is(parseDuration('1500ms'), 1500);
  t.is(parseDuration('30'), 30_000, 'a bare number is seconds');
  t.is(parseDuration('0.5s'), 500);
  t.throws(() => parseDuration('soon'), { message: '--timeout: expected a duration like 90s, 5m or 1500ms, got "soon"' });
});

test('followTargets: the services among apply results, with the template that was applied', (t) => {
  const spec: ServiceSpec = { image: 'web:1', replicas: 2 };
  const targets = followTargets([
    { ref: { kind: 'Service', stack: 'shop', name: 'web' }, action: 'created', objectJson: JSON.stringify(svc('shop', 'web', spec)) },
    { ref: { kind: 'Network', stack: 'shop', name: 'default' }, action: 'created', objectJson: JSON.stringify(net('shop', 'default')) },
    { ref: { kind: 'Service', stack: 'shop', name: 'old' }, action: 'pruned', objectJson: JSON.stringify(svc('shop', 'old', spec)) },
  ]);
  t.deepEqual(targets, [{ stack: 'shop', name: 'web', appliedTemplate: templateKey(spec), created: true }]);
});
