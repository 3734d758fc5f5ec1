import test from 'ava';
import { API_VERSION, type Node, type PortSpec, type ServiceSpec, type Task, type TaskState } from '../../common/resources/types.js';
import { ConstraintSyntaxError, matchesConstraint, parseConstraintOrThrow as parseConstraint } from '../../control-plane/scheduler/constraints.js';
import { schedule } from '../../control-plane/scheduler/schedule.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

interface NodeOptions {
  state?: Node['status']['state'];
  availability?: Node['spec']['availability'];
  role?: Node['spec']['role'];
  labels?: Record<string, string>;
  memoryBytes?: number;
  cpus?: number;
  hostname?: string;
}

function node(name: string, o: NodeOptions = {}): Node {
  return {
    apiVersion: API_VERSION,
    kind: 'Node',
    metadata: { name },
    spec: { availability: o.availability ?? 'active', role: o.role ?? 'worker', ...(o.labels ? { labels: o.labels } : {}) },
    status: {
      state: o.state ?? 'ready',
      hostname: o.hostname ?? `host-${name}`,
      resources: { memoryBytes: o.memoryBytes ?? 4 * GiB, nanoCpus: (o.cpus ?? 4) * 1e9 },
    },
  };
}

interface TaskOptions {
  service?: string;
  node?: string;
  memory?: number;
  cpus?: number;
  constraints?: string[];
  /** Label keys to spread over, in order (node.labels.KEY). */
  spread?: string[];
  maxReplicas?: number;
  ports?: PortSpec[];
  state?: TaskState;
  desiredState?: Task['desiredState'];
}

function task(name: string, o: TaskOptions = {}): Task {
  const spec: ServiceSpec = { image: 'busybox' };
  if (o.memory !== undefined || o.cpus !== undefined) {
    spec.resources = { reservations: { ...(o.memory !== undefined ? { memory: o.memory } : {}), ...(o.cpus !== undefined ? { cpus: o.cpus } : {}) } };
  }
  if (o.constraints || o.spread || o.maxReplicas !== undefined) {
    spec.placement = {
      ...(o.constraints ? { constraints: o.constraints } : {}),
      ...(o.spread ? { preferences: o.spread.map((key) => ({ spread: `node.labels.${key}` })) } : {}),
      ...(o.maxReplicas !== undefined ? { maxReplicasPerNode: o.maxReplicas } : {}),
    };
  }
  if (o.ports) spec.ports = o.ports;
  return {
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name },
    spec: { serviceName: o.service ?? 'web', serviceStack: '', serviceGeneration: 1, slot: 1, spec },
    ...(o.node ? { nodeName: o.node } : {}),
    desiredState: o.desiredState ?? 'running',
    status: { state: o.state ?? (o.node ? 'running' : 'new'), timestamp: '2024-01-01T00:00:00Z' },
  };
}

function placedOn(result: ReturnType<typeof schedule>): Record<string, string> {
  return Object.fromEntries(result.placements.map((p) => [p.task, p.node]));
}

test('constraints: the scheduler parses with the shared parser, keeping the text for messages', (t) => {
  t.like(parseConstraint(' node.labels.zone == b '), { text: 'node.labels.zone == b', field: 'label', key: 'zone', op: '==', value: 'b' });
  t.like(parseConstraint('node.role!=manager'), { field: 'role', op: '!=', value: 'manager' });
  t.like(parseConstraint('node.hostname==h1'), { field: 'hostname', op: '==', value: 'h1' });
  t.like(parseConstraint('node.id==n1'), { field: 'id', op: '==', value: 'n1' });
  t.like(parseConstraint('node.labels.a.b==x=y'), { field: 'label', key: 'a.b', value: 'x=y' });
  const cases: Array<[string, RegExp]> = [
    ['node.role', /expected node\.labels\.KEY==VALUE/],
    ['node.role=worker', /expected node\.labels\.KEY==VALUE/],
    ['node.labels.==x', /missing label key/],
    ['node.role==', /missing value/],
    ['engine.labels.x==y', /unknown attribute "engine\.labels\.x"/],
    ['node.role==a==b', /more than one == or != operator/],
    ['node.labels.x==a!=b', /more than one == or != operator/],
    ['node.role==boss', /node\.role is "manager" or "worker", got "boss"/],
  ];
  for (const [bad, why] of cases) {
    const err = t.throws(() => parseConstraint(bad), { instanceOf: ConstraintSyntaxError }, bad);
    t.is(err.constraint, bad);
    t.true(err.message.startsWith(`invalid placement constraint ${JSON.stringify(bad)}: `), err.message);
    t.regex(err.message, why, bad);
  }
});

test('constraints: a missing label fails == and passes !=', (t) => {
  const n = node('n1', { labels: { zone: 'a' }, role: 'manager', hostname: 'alpha' });
  t.true(matchesConstraint(n, parseConstraint('node.labels.zone==a')));
  t.false(matchesConstraint(n, parseConstraint('node.labels.zone==b')));
  t.true(matchesConstraint(n, parseConstraint('node.labels.zone!=b')));
  t.false(matchesConstraint(n, parseConstraint('node.labels.disk==ssd')));
  t.true(matchesConstraint(n, parseConstraint('node.labels.disk!=ssd')));
  t.true(matchesConstraint(n, parseConstraint('node.role==manager')));
  t.true(matchesConstraint(n, parseConstraint('node.hostname==alpha')));
  t.true(matchesConstraint(n, parseConstraint('node.id==n1')));
});

test('places a task on the only ready node', (t) => {
  const r = schedule({ nodes: [node('n1')], tasks: [], pending: [task('t1')] });
  t.deepEqual(r, { placements: [{ task: 't1', node: 'n1' }], unplaced: [] });
});

test('no nodes at all', (t) => {
  const r = schedule({ nodes: [], tasks: [], pending: [task('t1')] });
  t.deepEqual(r.unplaced, [{ task: 't1', reason: 'no suitable node (no nodes)' }]);
});

test('skips nodes that are not ready, paused or draining', (t) => {
  const nodes = [
    node('a-down', { state: 'down' }),
    node('b-unknown', { state: 'unknown' }),
    node('c-pause', { availability: 'pause' }),
    node('d-drain', { availability: 'drain' }),
  ];
  const r = schedule({ nodes, tasks: [], pending: [task('t1')] });
  t.deepEqual(r.unplaced, [{ task: 't1', reason: 'no suitable node (4 nodes: 2 not ready, 1 paused, 1 draining)' }]);
  const withGood = schedule({ nodes: [...nodes, node('e-ok')], tasks: [], pending: [task('t1')] });
  t.deepEqual(placedOn(withGood), { t1: 'e-ok' });
});

test('memory reservations: single node, insufficient memory', (t) => {
  const r = schedule({ nodes: [node('n1', { memoryBytes: 256 * MiB })], tasks: [], pending: [task('t1', { memory: 512 * MiB })] });
  t.deepEqual(r.unplaced, [{ task: 't1', reason: 'no suitable node (1 node: 1 insufficient memory)' }]);
});

test('memory reservations count tasks already on the node and earlier placements of the batch', (t) => {
  const nodes = [node('n1', { memoryBytes: 1 * GiB })];
  const existing = [task('old', { node: 'n1', memory: 512 * MiB })];
  const r = schedule({
    nodes,
    tasks: existing,
    pending: [task('t1', { memory: 256 * MiB }), task('t2', { memory: 256 * MiB }), task('t3', { memory: 256 * MiB })],
  });
  t.deepEqual(placedOn(r), { t1: 'n1', t2: 'n1' });
  t.deepEqual(r.unplaced, [{ task: 't3', reason: 'no suitable node (1 node: 1 insufficient memory)' }]);
});

test('terminal tasks release their reservation; shutting-down ones still hold it', (t) => {
  const nodes = [node('n1', { memoryBytes: 1 * GiB })];
  const done = task('done', { node: 'n1', memory: 1 * GiB, state: 'failed' });
  const r1 = schedule({ nodes, tasks: [done], pending: [task('t1', { memory: 1 * GiB })] });
  t.deepEqual(placedOn(r1), { t1: 'n1' });
  const stopping = task('stopping', { node: 'n1', memory: 1 * GiB, desiredState: 'shutdown' });
  const r2 = schedule({ nodes, tasks: [stopping], pending: [task('t1', { memory: 1 * GiB })] });
  t.is(r2.placements.length, 0);
});

test('cpu reservations', (t) => {
  const nodes = [node('n1', { cpus: 2 })];
  const r = schedule({ nodes, tasks: [], pending: [task('t1', { cpus: 1.5 }), task('t2', { cpus: 0.5 }), task('t3', { cpus: 0.25 })] });
  t.deepEqual(placedOn(r), { t1: 'n1', t2: 'n1' });
  t.deepEqual(r.unplaced, [{ task: 't3', reason: 'no suitable node (1 node: 1 insufficient cpu)' }]);
});

test('tasks without reservations always fit', (t) => {
  const r = schedule({ nodes: [node('n1', { memoryBytes: 0, cpus: 0 })], tasks: [], pending: [task('t1'), task('t2')] });
  t.is(r.placements.length, 2);
});

test('constraints on labels, role and hostname', (t) => {
  const nodes = [
    node('n1', { labels: { zone: 'a' }, role: 'manager', hostname: 'alpha' }),
    node('n2', { labels: { zone: 'b' }, hostname: 'beta' }),
    node('n3', { hostname: 'gamma' }),
  ];
  const r = schedule({
    nodes,
    tasks: [],
    pending: [
      task('zone-b', { service: 's1', constraints: ['node.labels.zone==b'] }),
      task('not-a', { service: 's2', constraints: ['node.labels.zone!=a', 'node.hostname!=beta'] }),
      task('manager', { service: 's3', constraints: ['node.role==manager'] }),
      task('gamma', { service: 's4', constraints: ['node.hostname==gamma'] }),
    ],
  });
  t.deepEqual(placedOn(r), { 'zone-b': 'n2', 'not-a': 'n3', manager: 'n1', gamma: 'n3' });
});

test('reasons aggregate per filter across nodes', (t) => {
  const nodes = [
    node('n1', { memoryBytes: 128 * MiB, labels: { zone: 'b' } }),
    node('n2', { memoryBytes: 128 * MiB, labels: { zone: 'b' } }),
    node('n3', { labels: { zone: 'a' } }),
  ];
  const r = schedule({ nodes, tasks: [], pending: [task('t1', { memory: 256 * MiB, constraints: ['node.labels.zone==b'] })] });
  t.deepEqual(r.unplaced, [{ task: 't1', reason: 'no suitable node (3 nodes: 2 insufficient memory, 1 failed constraint node.labels.zone==b)' }]);
});

test('an invalid constraint leaves the task unplaced with the parse error', (t) => {
  const r = schedule({ nodes: [node('n1')], tasks: [], pending: [task('t1', { constraints: ['zone=b'] })] });
  t.is(r.placements.length, 0);
  t.regex(r.unplaced[0]?.reason ?? '', /invalid placement constraint "zone=b": expected node\.labels\.KEY==VALUE/);
});

test('spread: replicas of a service go to different nodes', (t) => {
  const nodes = [node('n1'), node('n2'), node('n3')];
  const r = schedule({ nodes, tasks: [], pending: ['t1', 't2', 't3', 't4', 't5', 't6'].map((n) => task(n)) });
  const counts: Record<string, number> = {};
  for (const p of r.placements) counts[p.node] = (counts[p.node] ?? 0) + 1;
  t.deepEqual(counts, { n1: 2, n2: 2, n3: 2 });
  // Ties broken by node name: deterministic.
  t.deepEqual(
    r.placements.slice(0, 3).map((p) => p.node),
    ['n1', 'n2', 'n3'],
  );
});

test('spread: fewest tasks of the same service first, then fewest tasks overall', (t) => {
  const nodes = [node('n1'), node('n2'), node('n3')];
  const existing = [
    task('web-1', { service: 'web', node: 'n1' }),
    task('db-1', { service: 'db', node: 'n2' }),
    task('db-2', { service: 'db', node: 'n2' }),
    task('cache-1', { service: 'cache', node: 'n3' }),
  ];
  const r = schedule({ nodes, tasks: existing, pending: [task('web-2', { service: 'web' })] });
  // n2 and n3 have no web task; n3 has fewer tasks overall.
  t.deepEqual(placedOn(r), { 'web-2': 'n3' });
});

test('spread ignores tasks being shut down', (t) => {
  const nodes = [node('n1'), node('n2')];
  const existing = [task('web-old', { node: 'n1', desiredState: 'shutdown' }), task('other', { service: 'x', node: 'n2' })];
  const r = schedule({ nodes, tasks: existing, pending: [task('web-new')] });
  t.deepEqual(placedOn(r), { 'web-new': 'n1' });
});

test('is deterministic regardless of node order', (t) => {
  const nodes = ['n5', 'n2', 'n9', 'n1'].map((n) => node(n));
  const pending = Array.from({ length: 7 }, (_, i) => task(`t${i}`));
  const a = schedule({ nodes, tasks: [], pending });
  const b = schedule({ nodes: [...nodes].reverse(), tasks: [], pending });
  t.deepEqual(a, b);
});

test('1,000 nodes × 10,000 tasks', (t) => {
  const nodes = Array.from({ length: 1000 }, (_, i) =>
    node(`node-${String(i).padStart(4, '0')}`, {
      memoryBytes: 8 * GiB,
      cpus: 8,
      labels: { zone: `z${i % 3}` },
      ...(i % 50 === 0 ? { availability: 'drain' as const } : {}),
    }),
  );
  const existing = Array.from({ length: 2000 }, (_, i) =>
    task(`existing-${i}`, { service: `old-${i % 10}`, node: `node-${String(i % 1000).padStart(4, '0')}`, memory: 256 * MiB }),
  );
  const pending = Array.from({ length: 10_000 }, (_, i) =>
    task(`pending-${i}`, {
      service: `svc-${i % 20}`,
      memory: 128 * MiB,
      cpus: 0.1,
      ...(i % 4 === 0 ? { constraints: ['node.labels.zone==z1'] } : {}),
    }),
  );
  const started = Date.now();
  const r = schedule({ nodes, tasks: existing, pending });
  t.log(`scheduled ${r.placements.length} tasks in ${Date.now() - started} ms`);
  t.is(r.placements.length + r.unplaced.length, 10_000);
  t.is(r.unplaced.length, 0);
  const used = new Map<string, number>();
  for (const p of r.placements) used.set(p.node, (used.get(p.node) ?? 0) + 1);
  t.false(
    [...used.keys()].some((n) => Number(n.slice(5)) % 50 === 0),
    'no task on a draining node',
  );
  // Spread keeps every active node within a small range of the average.
  const counts = [...used.values()];
  t.true(Math.max(...counts) - Math.min(...counts) <= 12);
});

function countBy<T>(items: T[], key: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
}

test("preferences: spread over a label's values, not over nodes", (t) => {
  // Zone a has three nodes, zone b one: plain spread would put 3 of 4 in a; preferences give 2 and 2.
  const nodes = [
    node('a1', { labels: { zone: 'a' } }),
    node('a2', { labels: { zone: 'a' } }),
    node('a3', { labels: { zone: 'a' } }),
    node('b1', { labels: { zone: 'b' } }),
  ];
  const zoneOf = (n: string): string => n.slice(0, 1);
  const r = schedule({ nodes, tasks: [], pending: ['t1', 't2', 't3', 't4'].map((n) => task(n, { spread: ['zone'] })) });
  t.deepEqual(
    countBy(r.placements, (p) => zoneOf(p.node)),
    { a: 2, b: 2 },
  );
  // Inside zone a, the two tasks still go to different nodes.
  t.is(new Set(r.placements.filter((p) => zoneOf(p.node) === 'a').map((p) => p.node)).size, 2);
});

test('preferences: nodes missing the label form their own group', (t) => {
  const nodes = [node('a1', { labels: { zone: 'a' } }), node('a2', { labels: { zone: 'a' } }), node('x1'), node('x2')];
  const r = schedule({ nodes, tasks: [], pending: ['t1', 't2', 't3', 't4', 't5', 't6'].map((n) => task(n, { spread: ['zone'] })) });
  t.deepEqual(
    countBy(r.placements, (p) => p.node.slice(0, 1)),
    { a: 3, x: 3 },
  );
});

test('preferences: existing tasks of the service count towards their group', (t) => {
  const nodes = [node('a1', { labels: { zone: 'a' } }), node('b1', { labels: { zone: 'b' } }), node('c1', { labels: { zone: 'c' } })];
  const existing = [task('old-1', { node: 'a1' }), task('old-2', { node: 'a1' }), task('old-3', { node: 'b1' }), task('other', { service: 'x', node: 'c1' })];
  const r = schedule({ nodes, tasks: existing, pending: ['t1', 't2', 't3'].map((n) => task(n, { spread: ['zone'] })) });
  // Zone c is emptiest (0 of this service); then b and c tie at 1 (b1 runs fewer tasks overall); then c.
  t.deepEqual(
    countBy(r.placements, (p) => p.node),
    { c1: 2, b1: 1 },
  );
});

test('preferences: nested in order, second label spread inside each group of the first', (t) => {
  const nodes = [
    node('n1', { labels: { dc: 'east', rack: 'r1' } }),
    node('n2', { labels: { dc: 'east', rack: 'r1' } }),
    node('n3', { labels: { dc: 'east', rack: 'r2' } }),
    node('n4', { labels: { dc: 'west', rack: 'r1' } }),
  ];
  const r = schedule({ nodes, tasks: [], pending: ['t1', 't2', 't3', 't4'].map((n) => task(n, { spread: ['dc', 'rack'] })) });
  const byNode = countBy(r.placements, (p) => p.node);
  // 2 in east (one per rack: r1 has n1/n2, r2 has n3), 2 in west (n4 only).
  t.is(byNode['n4'], 2);
  t.is(byNode['n3'], 1);
  t.is((byNode['n1'] ?? 0) + (byNode['n2'] ?? 0), 1);
});

test('preferences: a group whose nodes are all filtered out does not hold tasks back', (t) => {
  const nodes = [node('a1', { labels: { zone: 'a' } }), node('b1', { labels: { zone: 'b' }, availability: 'drain' })];
  const r = schedule({ nodes, tasks: [], pending: ['t1', 't2'].map((n) => task(n, { spread: ['zone'] })) });
  t.deepEqual(
    countBy(r.placements, (p) => p.node),
    { a1: 2 },
  );
});

test('preferences: a spread that is not a node label leaves the task unplaced with a clear reason', (t) => {
  const bad = task('t1');
  bad.spec.spec.placement = { preferences: [{ spread: 'zone' }] };
  const r = schedule({ nodes: [node('n1')], tasks: [], pending: [bad] });
  t.deepEqual(r.unplaced, [{ task: 't1', reason: 'invalid placement preference spread "zone": expected node.labels.KEY' }]);
});

test("max replicas per node: a filter counting the service's tasks already there and placed in the batch", (t) => {
  const nodes = [node('n1'), node('n2')];
  const existing = [task('old', { node: 'n1', maxReplicas: 2 }), task('leaving', { node: 'n2', desiredState: 'shutdown' })];
  const pending = ['t1', 't2', 't3', 't4'].map((n) => task(n, { maxReplicas: 2 }));
  const r = schedule({ nodes, tasks: existing, pending });
  t.deepEqual(
    countBy(r.placements, (p) => p.node),
    { n1: 1, n2: 2 },
  );
  t.deepEqual(r.unplaced, [{ task: 't4', reason: 'no suitable node (2 nodes: 2 max replicas per node (2) reached)' }]);
});

test('max replicas per node 0 means no limit', (t) => {
  const r = schedule({ nodes: [node('n1')], tasks: [], pending: ['t1', 't2', 't3'].map((n) => task(n, { maxReplicas: 0 })) });
  t.is(r.placements.length, 3);
});

test('host-mode ports: a node running a task (of any service) with the port in host mode is skipped', (t) => {
  const nodes = [node('n1'), node('n2'), node('n3')];
  const hostPort: PortSpec[] = [{ target: 80, published: 8080, mode: 'host' }];
  const existing = [
    task('other-1', { service: 'other', node: 'n1', ports: hostPort }),
    // Still holds its port while it stops.
    task('other-2', { service: 'other', node: 'n2', ports: hostPort, desiredState: 'shutdown' }),
    // Ended: its port is free.
    task('other-3', { service: 'other', node: 'n3', ports: hostPort, state: 'complete' }),
  ];
  const r = schedule({ nodes, tasks: existing, pending: [task('web-1', { ports: hostPort }), task('web-2', { ports: hostPort })] });
  t.deepEqual(placedOn(r), { 'web-1': 'n3' });
  t.deepEqual(r.unplaced, [{ task: 'web-2', reason: 'no suitable node (3 nodes: 3 host port 8080/tcp in use)' }]);
});

test('host-mode ports: protocol, ingress mode and absent published ports do not conflict', (t) => {
  const nodes = [node('n1')];
  const existing = [
    task('udp', { service: 'a', node: 'n1', ports: [{ target: 53, published: 8080, protocol: 'udp', mode: 'host' }] }),
    task('mesh', { service: 'b', node: 'n1', ports: [{ target: 80, published: 8081 }] }),
  ];
  const pending = [
    task('tcp', { service: 'c', ports: [{ target: 80, published: 8080, mode: 'host' }] }),
    task('mesh-too', { service: 'd', ports: [{ target: 80, published: 8081 }] }),
  ];
  t.deepEqual(placedOn(schedule({ nodes, tasks: existing, pending })), { tcp: 'n1', 'mesh-too': 'n1' });
});

test('reasons from every filter, in filter order', (t) => {
  const nodes = [
    node('n1', { state: 'down' }),
    node('n2', { memoryBytes: 64 * MiB }),
    node('n3', { labels: { zone: 'b' } }),
    node('n4', { labels: { zone: 'a' } }),
    node('n5', { labels: { zone: 'a' } }),
  ];
  const hostPort: PortSpec[] = [{ target: 80, published: 8080, mode: 'host' }];
  const existing = [task('x', { service: 'x', node: 'n4', ports: hostPort }), task('w', { node: 'n5', maxReplicas: 1 })];
  const pending = [task('t1', { memory: 128 * MiB, constraints: ['node.labels.zone!=b'], maxReplicas: 1, ports: hostPort })];
  const r = schedule({ nodes, tasks: existing, pending });
  t.deepEqual(r.unplaced, [
    {
      task: 't1',
      reason:
        'no suitable node (5 nodes: 1 not ready, 1 insufficient memory, 1 failed constraint node.labels.zone!=b, 1 host port 8080/tcp in use, 1 max replicas per node (1) reached)',
    },
  ]);
});
